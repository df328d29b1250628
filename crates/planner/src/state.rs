//! The planner's memory of an answer, kept in a conversation turn: the [`Intent`] it planned,
//! written with names (tables, columns, measures) rather than catalog positions, so it can be
//! read back against the next question's catalog even when that one holds other tables or
//! lists them in another order. A name that no longer resolves makes the state unusable and the
//! follow-up is read as a fresh question.
//!
//! Also the [`Entities`] of an intent: what the answer was about, in words, for suggestions
//! and for other generators.

use bqai_core::conversation::Entities;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::dates::DateRange;
use crate::lexicon::{Agg, CmpOp, Dir, Grain};
use crate::schema::{Catalog, ColId};
use crate::understand::{Absent, Cands, CmpTarget, Dim, Filter, Intent, Listing, Metric, Ranking};

/// Version of the state format; another version is ignored (the follow-up is read fresh).
const VERSION: u32 = 1;

/// What the planner stores with a turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanState {
    version: u32,
    intent: IntentDoc,
}

type ColDoc = (String, String);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MetricDoc {
    Measure(String),
    Count {
        table: String,
        distinct: bool,
    },
    CountDistinct(Vec<ColDoc>),
    Agg {
        agg: Agg,
        col: Vec<ColDoc>,
        explicit: bool,
    },
    PerEntity {
        table: String,
        per: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AbsentDoc {
    table: String,
    owner: String,
    filters: Vec<FilterDoc>,
    range: Option<RangeDoc>,
    time_column: Option<Vec<ColDoc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DimDoc {
    Column(Vec<ColDoc>),
    Entity(String),
    Bucket(Grain),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FilterDoc {
    Values {
        options: Vec<(ColDoc, Vec<String>)>,
        negated: bool,
    },
    CompareColumn {
        col: Vec<ColDoc>,
        op: CmpOp,
        value: f64,
        high: Option<f64>,
    },
    CompareMetric {
        metric: MetricDoc,
        op: CmpOp,
        value: f64,
        high: Option<f64>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RangeDoc {
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    month_of_year: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct IntentDoc {
    metrics: Vec<MetricDoc>,
    dims: Vec<DimDoc>,
    filters: Vec<FilterDoc>,
    range: Option<RangeDoc>,
    time_column: Option<Vec<ColDoc>>,
    ranking: Option<(Dir, u64, usize)>,
    subject: Option<String>,
    tables: Vec<String>,
    listing: Option<(Vec<Vec<ColDoc>>, bool)>,
    #[serde(default)]
    share: bool,
    #[serde(default)]
    absent: Option<AbsentDoc>,
    #[serde(default)]
    versus: Option<(RangeDoc, RangeDoc)>,
    #[serde(default)]
    growth: bool,
    #[serde(default)]
    per_group: bool,
    #[serde(default)]
    count_groups: bool,
}

impl PlanState {
    /// The state of a planned intent.
    pub(crate) fn of(intent: &Intent, cat: &Catalog) -> Self {
        let w = Writer(cat);
        Self {
            version: VERSION,
            intent: IntentDoc {
                metrics: intent.metrics.iter().map(|m| w.metric(m)).collect(),
                dims: intent
                    .dims
                    .iter()
                    .map(|d| match d {
                        Dim::Column(c) => DimDoc::Column(w.cands(c)),
                        Dim::Entity(t) => DimDoc::Entity(w.table(*t)),
                        Dim::Bucket(g) => DimDoc::Bucket(*g),
                    })
                    .collect(),
                filters: intent.filters.iter().map(|f| w.filter(f)).collect(),
                range: intent.range.as_ref().map(RangeDoc::of),
                time_column: intent.time_column.as_ref().map(|c| w.cands(c)),
                ranking: intent.ranking.map(|r| (r.dir, r.n, r.by)),
                subject: intent.subject.map(|t| w.table(t)),
                tables: intent.tables.iter().map(|t| w.table(*t)).collect(),
                listing: intent
                    .listing
                    .as_ref()
                    .map(|l| (l.columns.iter().map(|c| w.cands(c)).collect(), l.distinct)),
                share: intent.share,
                absent: intent.absent.as_ref().map(|a| AbsentDoc {
                    table: w.table(a.table),
                    owner: w.table(a.owner),
                    filters: a.filters.iter().map(|f| w.filter(f)).collect(),
                    range: a.range.as_ref().map(RangeDoc::of),
                    time_column: a.time_column.as_ref().map(|c| w.cands(c)),
                }),
                versus: intent
                    .versus
                    .as_ref()
                    .map(|(a, b)| (RangeDoc::of(a), RangeDoc::of(b))),
                growth: intent.growth,
                per_group: intent.per_group,
                count_groups: intent.count_groups,
            },
        }
    }

    /// As JSON, for [`bqai_core::ask::Generation::state`].
    pub(crate) fn to_json(&self) -> Option<serde_json::Value> {
        serde_json::to_value(self).ok()
    }

    /// Reads a turn's state back; `None` if it is not the planner's (another version, another
    /// generator).
    pub(crate) fn from_json(value: &serde_json::Value) -> Option<Self> {
        serde_json::from_value::<Self>(value.clone())
            .ok()
            .filter(|s| s.version == VERSION)
    }

    /// The intent against `cat`; `None` when a table, column or measure it names is not there.
    pub(crate) fn intent(&self, cat: &Catalog) -> Option<Intent> {
        let r = Reader(cat);
        let d = &self.intent;
        Some(Intent {
            metrics: d
                .metrics
                .iter()
                .map(|m| r.metric(m))
                .collect::<Option<_>>()?,
            dims: d
                .dims
                .iter()
                .map(|x| {
                    Some(match x {
                        DimDoc::Column(c) => Dim::Column(r.cands(c)?),
                        DimDoc::Entity(t) => Dim::Entity(cat.table_id(t)?),
                        DimDoc::Bucket(g) => Dim::Bucket(*g),
                    })
                })
                .collect::<Option<_>>()?,
            filters: d
                .filters
                .iter()
                .map(|f| r.filter(f))
                .collect::<Option<_>>()?,
            range: d.range.as_ref().map(RangeDoc::range),
            time_column: match &d.time_column {
                Some(c) => Some(r.cands(c)?),
                None => None,
            },
            ranking: d.ranking.map(|(dir, n, by)| Ranking { dir, n, by }),
            subject: match &d.subject {
                Some(t) => Some(cat.table_id(t)?),
                None => None,
            },
            tables: d
                .tables
                .iter()
                .map(|t| cat.table_id(t))
                .collect::<Option<_>>()?,
            listing: match &d.listing {
                Some((cols, distinct)) => Some(Listing {
                    columns: cols.iter().map(|c| r.cands(c)).collect::<Option<_>>()?,
                    distinct: *distinct,
                }),
                None => None,
            },
            share: d.share,
            absent: match &d.absent {
                Some(a) => Some(Absent {
                    table: cat.table_id(&a.table)?,
                    owner: cat.table_id(&a.owner)?,
                    filters: a
                        .filters
                        .iter()
                        .map(|f| r.filter(f))
                        .collect::<Option<_>>()?,
                    range: a.range.as_ref().map(RangeDoc::range),
                    time_column: match &a.time_column {
                        Some(c) => Some(r.cands(c)?),
                        None => None,
                    },
                }),
                None => None,
            },
            versus: d.versus.as_ref().map(|(a, b)| (a.range(), b.range())),
            growth: d.growth,
            per_group: d.per_group,
            count_groups: d.count_groups,
        })
    }
}

impl RangeDoc {
    fn of(r: &DateRange) -> Self {
        Self {
            start: r.start,
            end: r.end,
            month_of_year: r.month_of_year,
        }
    }

    fn range(&self) -> DateRange {
        DateRange {
            start: self.start,
            end: self.end,
            month_of_year: self.month_of_year,
        }
    }
}

struct Writer<'a>(&'a Catalog);

impl Writer<'_> {
    fn table(&self, t: usize) -> String {
        self.0.tables[t].name.clone()
    }

    fn col(&self, c: ColId) -> ColDoc {
        (self.table(c.0), self.0.column(c).name.clone())
    }

    fn cands(&self, c: &Cands) -> Vec<ColDoc> {
        c.iter().map(|c| self.col(*c)).collect()
    }

    fn metric(&self, m: &Metric) -> MetricDoc {
        match m {
            Metric::Measure(i) => MetricDoc::Measure(self.0.measures[*i].name.clone()),
            Metric::Count { table, distinct } => MetricDoc::Count {
                table: self.table(*table),
                distinct: *distinct,
            },
            Metric::CountDistinct(c) => MetricDoc::CountDistinct(self.cands(c)),
            Metric::Agg { agg, col, explicit } => MetricDoc::Agg {
                agg: *agg,
                col: self.cands(col),
                explicit: *explicit,
            },
            Metric::PerEntity { table, per } => MetricDoc::PerEntity {
                table: self.table(*table),
                per: self.table(*per),
            },
        }
    }

    fn filter(&self, f: &Filter) -> FilterDoc {
        match f {
            Filter::Values { options, negated } => FilterDoc::Values {
                options: options
                    .iter()
                    .map(|(c, v)| (self.col(*c), v.clone()))
                    .collect(),
                negated: *negated,
            },
            Filter::Compare {
                target: CmpTarget::Column(c),
                op,
                value,
                high,
            } => FilterDoc::CompareColumn {
                col: self.cands(c),
                op: *op,
                value: *value,
                high: *high,
            },
            Filter::Compare {
                target: CmpTarget::Metric(m),
                op,
                value,
                high,
            } => FilterDoc::CompareMetric {
                metric: self.metric(m),
                op: *op,
                value: *value,
                high: *high,
            },
        }
    }
}

struct Reader<'a>(&'a Catalog);

impl Reader<'_> {
    fn col(&self, c: &ColDoc) -> Option<ColId> {
        self.0.column_id(&c.0, &c.1)
    }

    fn cands(&self, c: &[ColDoc]) -> Option<Cands> {
        let out: Cands = c.iter().filter_map(|c| self.col(c)).collect();
        (!out.is_empty()).then_some(out)
    }

    fn metric(&self, m: &MetricDoc) -> Option<Metric> {
        Some(match m {
            MetricDoc::Measure(name) => Metric::Measure(
                self.0
                    .measures
                    .iter()
                    .position(|x| x.name.eq_ignore_ascii_case(name))?,
            ),
            MetricDoc::Count { table, distinct } => Metric::Count {
                table: self.0.table_id(table)?,
                distinct: *distinct,
            },
            MetricDoc::CountDistinct(c) => Metric::CountDistinct(self.cands(c)?),
            MetricDoc::Agg { agg, col, explicit } => Metric::Agg {
                agg: *agg,
                col: self.cands(col)?,
                explicit: *explicit,
            },
            MetricDoc::PerEntity { table, per } => Metric::PerEntity {
                table: self.0.table_id(table)?,
                per: self.0.table_id(per)?,
            },
        })
    }

    fn filter(&self, f: &FilterDoc) -> Option<Filter> {
        Some(match f {
            FilterDoc::Values { options, negated } => Filter::Values {
                options: options
                    .iter()
                    .map(|(c, v)| Some((self.col(c)?, v.clone())))
                    .collect::<Option<_>>()?,
                negated: *negated,
            },
            FilterDoc::CompareColumn {
                col,
                op,
                value,
                high,
            } => Filter::Compare {
                target: CmpTarget::Column(self.cands(col)?),
                op: *op,
                value: *value,
                high: *high,
            },
            FilterDoc::CompareMetric {
                metric,
                op,
                value,
                high,
            } => Filter::Compare {
                target: CmpTarget::Metric(self.metric(metric)?),
                op: *op,
                value: *value,
                high: *high,
            },
        })
    }
}

/// What an intent is about, in words.
pub(crate) fn entities(intent: &Intent, cat: &Catalog) -> Entities {
    let mut tables: Vec<usize> = Vec::new();
    let mut add = |t: usize| {
        if !tables.contains(&t) {
            tables.push(t);
        }
    };
    let metric_tables = |m: &Metric| -> Vec<usize> {
        match m {
            Metric::Measure(i) => cat.measures[*i].tables.clone(),
            Metric::Count { table, .. } | Metric::PerEntity { table, .. } => vec![*table],
            Metric::CountDistinct(c) | Metric::Agg { col: c, .. } => {
                c.first().map(|c| vec![c.0]).unwrap_or_default()
            }
        }
    };
    for m in &intent.metrics {
        metric_tables(m).into_iter().for_each(&mut add);
    }
    for d in &intent.dims {
        match d {
            Dim::Column(c) => c.first().into_iter().for_each(|c| add(c.0)),
            Dim::Entity(t) => add(*t),
            Dim::Bucket(_) => {}
        }
    }
    for f in &intent.filters {
        if let Filter::Values { options, .. } = f {
            options.first().into_iter().for_each(|(c, _)| add(c.0));
        }
    }
    intent.subject.into_iter().for_each(&mut add);
    intent.tables.iter().copied().for_each(&mut add);
    let col_name = |c: &Cands| c.first().map(|c| cat.column(*c).name.clone());
    Entities {
        tables: tables
            .iter()
            .map(|t| {
                let r = &cat.tables[*t].table_ref;
                format!("{}.{}", r.dataset, r.table)
            })
            .collect(),
        measures: intent
            .metrics
            .iter()
            .map(|m| match m {
                Metric::Measure(i) => cat.measures[*i].name.clone(),
                Metric::Count { table, .. } => format!("number of {}", cat.tables[*table].words()),
                Metric::PerEntity { table, per } => format!(
                    "{} per {}",
                    cat.tables[*table].words(),
                    cat.tables[*per].noun()
                ),
                Metric::CountDistinct(c) => {
                    format!("distinct {}", col_name(c).unwrap_or_default())
                }
                Metric::Agg { agg, col, .. } => format!(
                    "{} {}",
                    match agg {
                        Agg::Sum => "total",
                        Agg::Avg => "average",
                        Agg::Min => "minimum",
                        Agg::Max => "maximum",
                    },
                    col_name(col).unwrap_or_default()
                ),
            })
            .collect(),
        dimensions: intent
            .dims
            .iter()
            .filter_map(|d| match d {
                Dim::Column(c) => col_name(c),
                Dim::Entity(t) => Some(cat.tables[*t].noun()),
                Dim::Bucket(g) => Some(g.name().to_owned()),
            })
            .collect(),
        filters: intent
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::Values { options, negated } => options.first().map(|(c, v)| {
                    format!(
                        "{} {} {}",
                        cat.column(*c).name,
                        if *negated { "not in" } else { "=" },
                        v.join(" or ")
                    )
                }),
                Filter::Compare { .. } => None,
            })
            .collect(),
        time_range: intent
            .range
            .as_ref()
            .map(DateRange::describe)
            .filter(|s| !s.is_empty()),
        time_bucket: intent.dims.iter().find_map(|d| match d {
            Dim::Bucket(g) => Some(g.name().to_owned()),
            _ => None,
        }),
        limit: intent.ranking.map(|r| r.n),
    }
}
