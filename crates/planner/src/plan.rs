//! From an [`Intent`] to a [`Select`]: picking among ambiguous columns, choosing the table
//! rows are counted at, joining along foreign keys, and writing every expression with its
//! output name, plus the one-sentence explanation.
//!
//! Aggregates run over the finest table that reaches every other needed table through
//! many → one joins (`order_items` for revenue by country: each line has one order, each order
//! one customer), so no row is counted twice; counts of coarser tables use
//! `COUNT(DISTINCT key)`. Listings start at the listed table and add `DISTINCT` when a join
//! fans out.

use std::collections::{BTreeSet, VecDeque};

use bqai_core::model::SqlDialect;

use crate::dates::{self, DateRange};
use crate::lexicon::{Agg, CmpOp, Dir, Grain};
use crate::render::{Dialect, Join, Select, snake};
use crate::schema::{Catalog, ColId};
use crate::understand::{Absent, CmpTarget, Dim, Filter, Intent, Metric, Ranking};

/// SQL and what it computes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) sql: String,
    pub(crate) explanation: String,
}

/// A filter with its columns chosen.
#[derive(Debug, Clone)]
enum RFilter {
    Values {
        col: ColId,
        values: Vec<String>,
        negated: bool,
    },
    Column {
        col: ColId,
        op: CmpOp,
        value: f64,
        high: Option<f64>,
    },
    Having {
        metric: usize,
        op: CmpOp,
        value: f64,
        high: Option<f64>,
    },
    /// A condition written whole (the rows another table has none for), on `table`.
    Sql {
        table: usize,
        sql: String,
        words: String,
    },
}

impl RFilter {
    /// The table a condition on rows needs in the query; `None` for a condition on groups.
    fn table(&self) -> Option<usize> {
        match self {
            RFilter::Values { col, .. } | RFilter::Column { col, .. } => Some(col.0),
            RFilter::Sql { table, .. } => Some(*table),
            RFilter::Having { .. } => None,
        }
    }
}

/// A metric with its columns chosen.
#[derive(Debug, Clone, PartialEq)]
enum RMetric {
    Measure(usize),
    Count {
        table: usize,
        distinct: bool,
    },
    CountDistinct(ColId),
    Agg {
        agg: Agg,
        col: ColId,
        explicit: bool,
    },
    PerEntity {
        table: usize,
        per: usize,
    },
}

/// How a share is computed (`Intent::share`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Share {
    /// Each group's figure as a percent of all groups' ("share of revenue by channel").
    OfTotal,
    /// The percent of the counted rows that meet the filter at this index, per group ("% of
    /// orders cancelled by month"); the filter is not applied to the rows.
    OfRows(usize),
}

#[derive(Debug, Clone, PartialEq)]
enum RDim {
    Column(ColId),
    Entity(usize),
    Bucket(Grain),
}

struct Planner<'a> {
    cat: &'a Catalog,
    d: Dialect,
    /// Undirected hop counts between tables (`usize::MAX`: not connected).
    hops: Vec<Vec<usize>>,
}

/// Plans the SQL for `intent`; `Err` is a reason for the person who asked.
pub(crate) fn plan(intent: &Intent, cat: &Catalog, dialect: SqlDialect) -> Result<Planned, String> {
    let hops = (0..cat.tables.len())
        .map(|t| bfs(cat, t, false).0)
        .collect();
    let p = Planner {
        cat,
        d: Dialect(dialect),
        hops,
    };
    p.plan(intent)
}

/// Distances from `start` over foreign keys (only many → one when `directed`), and for each
/// reached table the edge that reached it (`None` for the start).
fn bfs(cat: &Catalog, start: usize, directed: bool) -> (Vec<usize>, Vec<Option<(usize, bool)>>) {
    let n = cat.tables.len();
    let mut dist = vec![usize::MAX; n];
    // (edge index, whether it was walked from the many side to the one side)
    let mut via: Vec<Option<(usize, bool)>> = vec![None; n];
    dist[start] = 0;
    let mut queue = VecDeque::from([start]);
    while let Some(t) = queue.pop_front() {
        for (ei, e) in cat.edges.iter().enumerate() {
            let step = if e.from.0 == t {
                Some((e.to.0, true))
            } else if e.to.0 == t && !directed {
                Some((e.from.0, false))
            } else {
                None
            };
            if let Some((u, up)) = step
                && dist[u] == usize::MAX
            {
                dist[u] = dist[t] + 1;
                via[u] = Some((ei, up));
                queue.push_back(u);
            }
        }
    }
    (dist, via)
}

impl Planner<'_> {
    fn col_sql(&self, c: ColId) -> String {
        let t = &self.cat.tables[c.0];
        format!(
            "{}.{}",
            self.d.ident(&t.name),
            self.d.ident(&t.columns[c.1].name)
        )
    }

    fn col_words(&self, c: ColId) -> String {
        self.cat.column(c).words()
    }

    /// Picks the candidate closest to the tables already involved; ties go to the smaller
    /// table (a catalogue's list price rather than every order line's price), then the first.
    fn pick(&self, cands: &[ColId], anchors: &BTreeSet<usize>) -> ColId {
        let score = |c: &ColId| {
            let d: usize = anchors.iter().map(|a| self.hops[c.0][*a].min(1_000)).sum();
            (d, self.cat.tables[c.0].num_rows.unwrap_or(u64::MAX), *c)
        };
        cands.iter().copied().min_by_key(score).unwrap_or((0, 0))
    }

    fn plan(&self, intent: &Intent) -> Result<Planned, String> {
        // Tables the question certainly involves, to settle ambiguous names against.
        let mut anchors: BTreeSet<usize> = intent.tables.iter().copied().collect();
        anchors.extend(intent.subject);
        let single = |c: &Vec<ColId>| (c.len() == 1).then(|| c[0].0);
        for m in &intent.metrics {
            match m {
                Metric::Measure(mi) => anchors.extend(self.cat.measures[*mi].tables.iter()),
                Metric::Count { table, .. } | Metric::PerEntity { table, .. } => {
                    anchors.insert(*table);
                }
                Metric::CountDistinct(c) | Metric::Agg { col: c, .. } => anchors.extend(single(c)),
            }
        }
        for d in &intent.dims {
            match d {
                Dim::Column(c) => anchors.extend(single(c)),
                Dim::Entity(t) => {
                    anchors.insert(*t);
                }
                Dim::Bucket(_) => {}
            }
        }
        for f in &intent.filters {
            match f {
                Filter::Values { options, .. } if options.len() == 1 => {
                    anchors.insert(options[0].0.0);
                }
                Filter::Compare {
                    target: CmpTarget::Column(c),
                    ..
                } => anchors.extend(single(c)),
                _ => {}
            }
        }
        if let Some(l) = &intent.listing {
            for c in &l.columns {
                anchors.extend(single(c));
            }
        }

        let mut resolve = |cands: &Vec<ColId>, anchors: &mut BTreeSet<usize>| {
            let c = self.pick(cands, anchors);
            anchors.insert(c.0);
            c
        };
        let dims: Vec<RDim> = intent
            .dims
            .iter()
            .map(|d| match d {
                Dim::Column(c) => RDim::Column(resolve(c, &mut anchors)),
                Dim::Entity(t) => RDim::Entity(*t),
                Dim::Bucket(g) => RDim::Bucket(*g),
            })
            .collect();
        let mut metrics: Vec<RMetric> = intent
            .metrics
            .iter()
            .map(|m| self.resolve_metric(m, &mut anchors, &mut resolve))
            .collect();
        let mut filters = Vec::new();
        for f in &intent.filters {
            let Filter::Compare {
                target: CmpTarget::Metric(m),
                op,
                value,
                high,
            } = f
            else {
                filters.extend(self.row_filter(f, &mut anchors));
                continue;
            };
            let rm = self.resolve_metric(m, &mut anchors, &mut resolve);
            let metric = match metrics.iter().position(|x| *x == rm) {
                Some(i) => i,
                None => {
                    metrics.push(rm);
                    metrics.len() - 1
                }
            };
            filters.push(RFilter::Having {
                metric,
                op: *op,
                value: *value,
                high: *high,
            });
        }
        let time_col = intent
            .time_column
            .as_ref()
            .map(|c| resolve(c, &mut anchors));
        if let Some(a) = &intent.absent {
            filters.push(self.absence(a)?);
        }
        if (intent.growth || intent.versus.is_some()) && metrics.is_empty() {
            return Err(
                "I understood a comparison over time but nothing to compare; name a figure, \
                 e.g. \"revenue growth by month\" or \"orders 2025 vs 2024\"."
                    .to_owned(),
            );
        }

        if intent.per_group {
            return self.top_per_group(
                &metrics,
                &dims,
                &filters,
                intent.range.as_ref(),
                time_col,
                intent.ranking,
            );
        }
        let share = if intent.share {
            Some(self.share(&metrics, &dims, &filters)?)
        } else {
            None
        };
        // Rows of one table ordered by one of its columns: "top 5 products by unit price".
        if share.is_none()
            && !intent.growth
            && intent.versus.is_none()
            && let (
                Some(r),
                [
                    RMetric::Agg {
                        col,
                        explicit: false,
                        ..
                    },
                ],
                [RDim::Entity(t)],
            ) = (intent.ranking, metrics.as_slice(), dims.as_slice())
            && col.0 == *t
            && !filters.iter().any(|f| matches!(f, RFilter::Having { .. }))
        {
            return self.listing(
                *t,
                &[],
                false,
                &filters,
                intent.range.as_ref(),
                time_col,
                Some((*col, r)),
                intent.tables.as_slice(),
            );
        }
        if metrics.is_empty() {
            let listing = intent.listing.clone().unwrap_or_default();
            let columns: Vec<ColId> = listing
                .columns
                .iter()
                .map(|c| resolve(c, &mut anchors))
                .collect();
            let subject = intent
                .subject
                .or_else(|| columns.first().map(|c| c.0))
                .ok_or_else(|| "I could not tell which rows to list.".to_owned())?;
            return self.listing(
                subject,
                &columns,
                listing.distinct,
                &filters,
                intent.range.as_ref(),
                time_col,
                None,
                intent.tables.as_slice(),
            );
        }
        self.aggregate(
            &metrics,
            &dims,
            &filters,
            intent.range.as_ref(),
            time_col,
            intent.ranking,
            intent.tables.as_slice(),
            share,
            Over {
                versus: intent.versus.as_ref(),
                growth: intent.growth,
                count_groups: intent.count_groups,
            },
        )
    }

    /// "the cheapest product in each category": the rows of one table ranked within each group
    /// (`RANK() OVER (PARTITION BY …)`), the first of each kept, ties and all.
    fn top_per_group(
        &self,
        metrics: &[RMetric],
        dims: &[RDim],
        filters: &[RFilter],
        range: Option<&DateRange>,
        time_col: Option<ColId>,
        ranking: Option<Ranking>,
    ) -> Result<Planned, String> {
        let (Some(r), [RMetric::Agg { col, .. }]) = (ranking, metrics) else {
            return Err("I could not tell what to rank within each group.".to_owned());
        };
        let col = *col;
        let t = col.0;
        let info = &self.cat.tables[t];
        let mut groups = Vec::new();
        for d in dims {
            match d {
                RDim::Column(c) => groups.push(*c),
                _ => {
                    return Err("I rank rows within the groups of a column (\"in each \
                         category\"), not of time buckets or other tables' rows."
                        .to_owned());
                }
            }
        }
        let mut required: BTreeSet<usize> = groups.iter().map(|c| c.0).collect();
        for f in filters {
            required.insert(f.table().ok_or_else(|| {
                "I cannot compare totals while ranking rows within groups.".to_owned()
            })?);
        }
        let tc = match range {
            Some(rg) => Some(self.time_column(t, true, time_col, &rg.describe())?),
            None => None,
        };
        required.extend(tc.map(|c| c.0));
        required.remove(&t);
        let (joins, _) = self.joins(t, &required, true)?;
        let mut shown: Vec<ColId> = groups.clone();
        shown.extend([info.key, info.label].into_iter().flatten().map(|c| (t, c)));
        if !shown.contains(&col) {
            shown.push(col);
        }
        let mut aliases = Aliases::default();
        let mut inner = Select {
            from: self.from(t),
            joins,
            ..Select::default()
        };
        let mut names = Vec::new();
        for c in &shown {
            let a = aliases.take(&self.output_name(*c, &shown));
            inner.columns.push((self.col_sql(*c), a.clone()));
            names.push(self.d.ident(&a));
        }
        let dir = if r.dir == Dir::Desc { "DESC" } else { "ASC" };
        let partition: Vec<String> = groups.iter().map(|c| self.col_sql(*c)).collect();
        let rank = aliases.take("rank_in_group");
        inner.columns.push((
            format!(
                "RANK() OVER (PARTITION BY {} ORDER BY {} {dir})",
                partition.join(", "),
                self.col_sql(col)
            ),
            rank.clone(),
        ));
        inner
            .filters
            .push(format!("{} IS NOT NULL", self.col_sql(col)));
        let mut conds = Vec::new();
        for f in filters {
            inner.filters.extend(self.where_sql(f));
            conds.push(self.filter_words(f, &[]));
        }
        if let (Some(rg), Some(tc)) = (range, tc) {
            inner.filters.extend(self.range_sql(rg, tc));
            conds.push(format!("{} is {}", self.col_words(tc), rg.describe()));
        }
        let order: Vec<String> = names.iter().take(groups.len() + 1).cloned().collect();
        let sql = format!(
            "SELECT {}\nFROM (\n{}\n) AS ranked\nWHERE {} = 1\nORDER BY {}",
            names.join(", "),
            inner.render(self.d),
            self.d.ident(&rank),
            order.join(", ")
        );
        let group_words: Vec<String> = groups.iter().map(|c| self.col_words(*c)).collect();
        let mut explanation = format!(
            "Lists the {} with the {} {} in each {} (all of them when several tie)",
            info.noun(),
            if r.dir == Dir::Desc {
                "highest"
            } else {
                "lowest"
            },
            self.col_words(col),
            join_words(&group_words, "and")
        );
        if !conds.is_empty() {
            explanation.push_str(&format!(", where {}", conds.join(" and ")));
        }
        explanation.push('.');
        Ok(Planned { sql, explanation })
    }

    /// A condition on rows with its column chosen (the candidate closest to `anchors`, which
    /// then anchors the rest); `None` for a comparison of a total.
    fn row_filter(&self, f: &Filter, anchors: &mut BTreeSet<usize>) -> Option<RFilter> {
        let mut pick = |cands: &[ColId]| {
            let col = self.pick(cands, anchors);
            anchors.insert(col.0);
            col
        };
        Some(match f {
            Filter::Values { options, negated } => {
                let cols: Vec<ColId> = options.iter().map(|o| o.0).collect();
                let col = pick(&cols);
                RFilter::Values {
                    col,
                    values: options
                        .iter()
                        .find(|o| o.0 == col)
                        .map(|o| o.1.clone())
                        .unwrap_or_default(),
                    negated: *negated,
                }
            }
            Filter::Compare {
                target: CmpTarget::Column(c),
                op,
                value,
                high,
            } => RFilter::Column {
                col: pick(c),
                op: *op,
                value: *value,
                high: *high,
            },
            Filter::Compare { .. } => return None,
        })
    }

    /// The condition "no row of `a.table` points at this row of `a.owner`" (meeting the
    /// absence's own conditions): `owner.key NOT IN (SELECT table.fk FROM table … WHERE fk IS
    /// NOT NULL AND …)`, uncorrelated so both engines plan it as an anti-join.
    fn absence(&self, a: &Absent) -> Result<RFilter, String> {
        let edge = self.cat.key_to(a.table, a.owner).ok_or_else(|| {
            format!(
                "I could not find how {} point at {}.",
                self.cat.tables[a.table].words(),
                self.cat.tables[a.owner].words()
            )
        })?;
        let mut anchors: BTreeSet<usize> = BTreeSet::from([a.table]);
        let mut filters = Vec::new();
        for f in &a.filters {
            filters.push(
                self.row_filter(f, &mut anchors).ok_or_else(|| {
                    "I cannot compare totals of rows that are not there.".to_owned()
                })?,
            );
        }
        let explicit = a.time_column.as_ref().map(|c| self.pick(c, &anchors));
        let tc = match &a.range {
            Some(r) => Some(self.time_column(a.table, true, explicit, &r.describe())?),
            None => None,
        };
        let mut required: BTreeSet<usize> = filters.iter().filter_map(RFilter::table).collect();
        required.extend(tc.map(|c| c.0));
        required.remove(&a.table);
        let (joins, _) = self.joins(a.table, &required, true)?;
        let fk = self.col_sql(edge.from);
        let mut inner = Select {
            columns: vec![(fk.clone(), "k".to_owned())],
            from: self.from(a.table),
            joins,
            filters: vec![format!("{fk} IS NOT NULL")],
            ..Select::default()
        };
        let mut conds = Vec::new();
        for f in &filters {
            inner.filters.extend(self.where_sql(f));
            conds.push(self.filter_words(f, &[]));
        }
        if let (Some(r), Some(tc)) = (&a.range, tc) {
            inner.filters.extend(self.range_sql(r, tc));
            conds.push(format!("{} is {}", self.col_words(tc), r.describe()));
        }
        let mut words = format!(
            "{} has no {}",
            self.cat.tables[a.owner].noun(),
            self.cat.tables[a.table].words()
        );
        if !conds.is_empty() {
            words.push_str(&format!(" with {}", conds.join(" and ")));
        }
        Ok(RFilter::Sql {
            table: a.owner,
            sql: format!(
                "{} NOT IN ({})",
                self.col_sql(edge.to),
                inner.render(self.d).replace('\n', " ")
            ),
            words,
        })
    }

    /// How the share a question asks for is computed, or why it cannot be: one figure that
    /// adds up (a count, a sum, a measure that is one SUM or COUNT), and what it is a share
    /// of — the rows meeting the question's one value filter (a count), or the groups.
    fn share(
        &self,
        metrics: &[RMetric],
        dims: &[RDim],
        filters: &[RFilter],
    ) -> Result<Share, String> {
        let refuse = || {
            "I understood a share or a percentage, but not of what: I compute one figure that \
             adds up (a count or a total) as a percent of all groups (\"share of revenue by \
             channel\") or the percent of rows meeting one condition (\"% of orders \
             cancelled\")."
                .to_owned()
        };
        let [m] = metrics else {
            return Err(refuse());
        };
        let values: Vec<usize> = filters
            .iter()
            .enumerate()
            .filter(|(_, f)| matches!(f, RFilter::Values { negated: false, .. }))
            .map(|(i, _)| i)
            .collect();
        if matches!(m, RMetric::Count { .. }) && values.len() == 1 {
            return Ok(Share::OfRows(values[0]));
        }
        let additive = match m {
            RMetric::Count { .. } => true,
            RMetric::Agg { agg, .. } => *agg == Agg::Sum,
            RMetric::Measure(mi) => one_additive_aggregate(&self.cat.measures[*mi].sql),
            RMetric::CountDistinct(_) | RMetric::PerEntity { .. } => false,
        };
        let having = filters.iter().any(|f| matches!(f, RFilter::Having { .. }));
        if additive && !dims.is_empty() && values.is_empty() && !having {
            Ok(Share::OfTotal)
        } else {
            Err(refuse())
        }
    }

    fn resolve_metric(
        &self,
        m: &Metric,
        anchors: &mut BTreeSet<usize>,
        resolve: &mut impl FnMut(&Vec<ColId>, &mut BTreeSet<usize>) -> ColId,
    ) -> RMetric {
        match m {
            Metric::Measure(mi) => RMetric::Measure(*mi),
            Metric::Count { table, distinct } => RMetric::Count {
                table: *table,
                distinct: *distinct,
            },
            Metric::CountDistinct(c) => RMetric::CountDistinct(resolve(c, anchors)),
            Metric::Agg { agg, col, explicit } => RMetric::Agg {
                agg: *agg,
                col: resolve(col, anchors),
                explicit: *explicit,
            },
            Metric::PerEntity { table, per } => RMetric::PerEntity {
                table: *table,
                per: *per,
            },
        }
    }

    /// The table to aggregate at: reaches every required table many → one, prefers `prefer`
    /// (a measure's own table), then the fewest joins.
    fn base(&self, required: &BTreeSet<usize>, prefer: Option<usize>) -> Option<usize> {
        let reaches = |b: usize| {
            let (dist, _) = bfs(self.cat, b, true);
            let ok = required.iter().all(|r| dist[*r] != usize::MAX);
            ok.then(|| required.iter().map(|r| dist[*r]).sum::<usize>())
        };
        if let Some(p) = prefer
            && reaches(p).is_some()
        {
            return Some(p);
        }
        (0..self.cat.tables.len())
            .filter_map(|b| reaches(b).map(|cost| (cost, !required.contains(&b), b)))
            .min()
            .map(|(_, _, b)| b)
    }

    /// The date column for ranges and buckets: the one named, else the nearest table's (from
    /// `base`, over the joins allowed) time column.
    fn time_column(
        &self,
        base: usize,
        directed: bool,
        explicit: Option<ColId>,
        what: &str,
    ) -> Result<ColId, String> {
        if let Some(c) = explicit {
            return Ok(c);
        }
        let (dist, _) = bfs(self.cat, base, directed);
        let mut reachable: Vec<usize> = (0..self.cat.tables.len())
            .filter(|t| dist[*t] != usize::MAX)
            .collect();
        reachable.sort_by_key(|t| (dist[*t], *t));
        reachable
            .into_iter()
            .find_map(|t| self.cat.tables[t].time_column.map(|c| (t, c)))
            .ok_or_else(|| {
                format!(
                    "I found no date column to apply {what} to in {} or the tables it joins.",
                    self.cat.tables[base].words()
                )
            })
    }

    /// FROM and JOINs: from `base` to every table of `required` along the BFS tree. Returns
    /// the joins and whether any walks from one to many (so rows may repeat).
    fn joins(
        &self,
        base: usize,
        required: &BTreeSet<usize>,
        directed: bool,
    ) -> Result<(Vec<Join>, bool), String> {
        let (dist, via) = bfs(self.cat, base, directed);
        let mut needed: BTreeSet<usize> = BTreeSet::new();
        for &r in required {
            if dist[r] == usize::MAX {
                return Err(format!(
                    "I could not find how {} relates to {}: no foreign key path joins them.",
                    self.cat.tables[base].words(),
                    self.cat.tables[r].words()
                ));
            }
            let mut t = r;
            while let Some((ei, up)) = via[t] {
                needed.insert(t);
                let e = self.cat.edges[ei];
                t = if up { e.from.0 } else { e.to.0 };
            }
        }
        let mut order: Vec<usize> = needed.into_iter().collect();
        order.sort_by_key(|t| (dist[*t], *t));
        let mut fans_out = false;
        let mut out = Vec::new();
        for t in order {
            let Some((ei, up)) = via[t] else { continue };
            let e = self.cat.edges[ei];
            fans_out |= !up;
            let info = &self.cat.tables[t];
            out.push(Join {
                table: self.d.table(&info.table_ref),
                alias: self.d.ident(&info.name),
                on: format!("{} = {}", self.col_sql(e.from), self.col_sql(e.to)),
            });
        }
        Ok((out, fans_out))
    }

    fn from(&self, t: usize) -> (String, String) {
        let info = &self.cat.tables[t];
        (self.d.table(&info.table_ref), self.d.ident(&info.name))
    }

    fn where_sql(&self, f: &RFilter) -> Option<String> {
        match f {
            RFilter::Values {
                col,
                values,
                negated,
            } => {
                let c = self.col_sql(*col);
                let lits: Vec<String> = values.iter().map(|v| self.d.string(v)).collect();
                Some(match (lits.as_slice(), negated) {
                    ([one], false) => format!("{c} = {one}"),
                    ([one], true) => format!("{c} <> {one}"),
                    (_, false) => format!("{c} IN ({})", lits.join(", ")),
                    (_, true) => format!("{c} NOT IN ({})", lits.join(", ")),
                })
            }
            RFilter::Column {
                col,
                op,
                value,
                high,
            } => Some(self.compare(&self.col_sql(*col), *op, *value, *high)),
            RFilter::Having { .. } => None,
            RFilter::Sql { sql, .. } => Some(sql.clone()),
        }
    }

    fn compare(&self, expr: &str, op: CmpOp, value: f64, high: Option<f64>) -> String {
        match (op, high) {
            (CmpOp::Between, Some(h)) => format!(
                "{expr} BETWEEN {} AND {}",
                self.d.number(value.min(h)),
                self.d.number(value.max(h))
            ),
            _ => format!("{expr} {} {}", op.sql(), self.d.number(value)),
        }
    }

    fn range_sql(&self, range: &DateRange, tc: ColId) -> Vec<String> {
        let c = self.col_sql(tc);
        let ty = self.cat.column(tc).field_type;
        let mut out = Vec::new();
        if let Some(s) = range.start {
            out.push(format!("{c} >= {}", self.d.date(ty, s)));
        }
        if let Some(e) = range.end {
            out.push(format!("{c} < {}", self.d.date(ty, e)));
        }
        if let Some(m) = range.month_of_year {
            out.push(format!("EXTRACT(MONTH FROM {c}) = {m}"));
        }
        out
    }

    fn filter_words(&self, f: &RFilter, metric_names: &[String]) -> String {
        match f {
            RFilter::Values {
                col,
                values,
                negated,
            } => {
                let vs = join_words(values, "or");
                format!(
                    "{} is {}{vs}",
                    self.col_words(*col),
                    if *negated { "not " } else { "" }
                )
            }
            RFilter::Column {
                col,
                op,
                value,
                high,
            } => format!(
                "{} is {}",
                self.col_words(*col),
                cmp_words(*op, *value, *high)
            ),
            RFilter::Having {
                metric,
                op,
                value,
                high,
            } => format!(
                "{} is {}",
                metric_names
                    .get(*metric)
                    .map_or("the total", String::as_str),
                cmp_words(*op, *value, *high)
            ),
            RFilter::Sql { words, .. } => words.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn listing(
        &self,
        subject: usize,
        columns: &[ColId],
        distinct: bool,
        filters: &[RFilter],
        range: Option<&DateRange>,
        time_col: Option<ColId>,
        ranked: Option<(ColId, Ranking)>,
        mentioned: &[usize],
    ) -> Result<Planned, String> {
        let info = &self.cat.tables[subject];
        let mut required: BTreeSet<usize> = mentioned.iter().copied().collect();
        for f in filters {
            required.insert(
                f.table().ok_or_else(|| {
                    "Comparisons of totals need something to group by.".to_owned()
                })?,
            );
        }
        required.extend(columns.iter().map(|c| c.0));
        let tc = match range {
            Some(r) => Some(self.time_column(subject, false, time_col, &r.describe())?),
            None => None,
        };
        required.extend(tc.map(|c| c.0));
        required.remove(&subject);
        let (joins, fans_out) = self.joins(subject, &required, false)?;

        let shown: Vec<ColId> = if columns.is_empty() {
            (0..info.columns.len()).map(|c| (subject, c)).collect()
        } else {
            columns.to_vec()
        };
        let mut select = Select {
            distinct: distinct || fans_out,
            from: self.from(subject),
            joins,
            ..Select::default()
        };
        let mut aliases = Aliases::default();
        let mut alias_of = Vec::new();
        for c in &shown {
            let a = aliases.take(&self.output_name(*c, &shown));
            alias_of.push((*c, a.clone()));
            select.columns.push((self.col_sql(*c), a));
        }
        if let Some((col, _)) = ranked
            && !shown.contains(&col)
        {
            let a = aliases.take(&self.cat.column(col).name);
            alias_of.push((col, a.clone()));
            select.columns.push((self.col_sql(col), a));
        }
        for f in filters {
            select.filters.extend(self.where_sql(f));
        }
        if let (Some(r), Some(tc)) = (range, tc) {
            select.filters.extend(self.range_sql(r, tc));
        }

        // Order: the ranking column; else time, then key, when shown.
        let alias_for = |c: ColId| {
            alias_of
                .iter()
                .find(|(x, _)| *x == c)
                .map(|(_, a)| self.d.ident(a))
        };
        let mut order_words = String::new();
        if let Some((col, r)) = ranked {
            // An empty value is neither the largest nor the smallest: last either way (on
            // DataFusion, DESC alone would rank NULLs first).
            let dir = if r.dir == Dir::Desc { "DESC" } else { "ASC" };
            select
                .order_by
                .extend(alias_for(col).map(|a| format!("{a} {dir} NULLS LAST")));
            select.limit = Some(r.n);
            order_words = format!(
                ", keeping the {} {} by {}",
                if r.dir == Dir::Desc { "top" } else { "bottom" },
                r.n,
                self.col_words(col)
            );
        } else if let Some(t) = info.time_column.filter(|t| shown.contains(&(subject, *t))) {
            select.order_by.extend(alias_for((subject, t)));
            order_words = format!(", ordered by {}", info.columns[t].words());
        }
        if let Some(k) = info.key
            && let Some(a) = alias_for((subject, k))
            && !select.order_by.iter().any(|o| o.starts_with(&a))
        {
            select.order_by.push(a);
        }
        if select.order_by.is_empty()
            && let Some((_, a)) = alias_of.first()
        {
            select.order_by.push(self.d.ident(a));
        }

        let cols_words: Vec<String> = shown
            .iter()
            .map(|c| self.cat.column(*c).name.clone())
            .collect();
        let mut conds: Vec<String> = filters.iter().map(|f| self.filter_words(f, &[])).collect();
        if let (Some(r), Some(tc)) = (range, tc) {
            conds.push(format!("{} is {}", self.col_words(tc), r.describe()));
        }
        let what = if columns.is_empty() {
            format!("{} ({})", info.words(), cols_words.join(", "))
        } else {
            format!(
                "{}{} of {}",
                if select.distinct && distinct {
                    "the distinct "
                } else {
                    ""
                },
                join_words(
                    &cols_words
                        .iter()
                        .map(|c| c.replace('_', " "))
                        .collect::<Vec<_>>(),
                    "and"
                ),
                info.words()
            )
        };
        let mut explanation = format!("Lists {what}");
        if !conds.is_empty() {
            explanation.push_str(&format!(" where {}", conds.join(" and ")));
        }
        explanation.push_str(&order_words);
        explanation.push('.');
        Ok(Planned {
            sql: select.render(self.d),
            explanation,
        })
    }

    /// The output name of a shown column: its name, or `product_name` when several tables
    /// have a `name`.
    fn output_name(&self, c: ColId, all: &[ColId]) -> String {
        let name = &self.cat.column(c).name;
        let clash = all
            .iter()
            .any(|o| o.0 != c.0 && self.cat.column(*o).name.eq_ignore_ascii_case(name));
        if clash {
            format!("{}_{}", snake(&self.cat.tables[c.0].noun()), snake(name))
        } else {
            snake(name)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn aggregate(
        &self,
        metrics: &[RMetric],
        dims: &[RDim],
        filters: &[RFilter],
        range: Option<&DateRange>,
        time_col: Option<ColId>,
        ranking: Option<Ranking>,
        mentioned: &[usize],
        share: Option<Share>,
        over: Over<'_>,
    ) -> Result<Planned, String> {
        let asked = range;
        let grain = dims.iter().find_map(|d| match d {
            RDim::Bucket(g) => Some(*g),
            _ => None,
        });
        // The dates read: both periods compared; for growth, one bucket more before the first
        // asked for, so that bucket has one to compare with (dropped from the answer).
        let mut first_bucket = None;
        let adjusted = if let Some((a, b)) = over.versus {
            if grain.is_some() || share.is_some() || ranking.is_some() {
                return Err(
                    "I compare two periods side by side for totals by category, not \
                     together with time buckets, shares or rankings; ask for one of them."
                        .to_owned(),
                );
            }
            Some(a.hull(b))
        } else if over.growth {
            let Some(g) = grain else {
                return Err("A growth needs a time bucket (\"by month\").".to_owned());
            };
            if share.is_some() || ranking.is_some() {
                return Err(
                    "I compute growth per time bucket, not together with shares or \
                     rankings; ask for one of them."
                        .to_owned(),
                );
            }
            match range.and_then(|r| r.start.map(|s| (r, s))) {
                Some((r, s)) => {
                    let first = dates::grain_start(g, s)
                        .ok_or_else(|| "I could not place the first time bucket.".to_owned())?;
                    first_bucket = Some(first);
                    Some(DateRange {
                        start: dates::grain_shift(g, first, -1),
                        ..r.clone()
                    })
                }
                None => None,
            }
        } else {
            None
        };
        let range = adjusted.as_ref().or(range);
        // Tables needed by everything but counted entities (which may need no join at all).
        let mut core: BTreeSet<usize> = mentioned.iter().copied().collect();
        let mut counted: Vec<usize> = Vec::new();
        for m in metrics {
            match m {
                RMetric::Measure(mi) => core.extend(self.cat.measures[*mi].tables.iter()),
                RMetric::Count { table, .. } => counted.push(*table),
                RMetric::CountDistinct(c) | RMetric::Agg { col: c, .. } => {
                    core.insert(c.0);
                }
                RMetric::PerEntity { table, .. } => {
                    core.insert(*table);
                }
            }
        }
        for d in dims {
            match d {
                RDim::Column(c) => {
                    core.insert(c.0);
                }
                RDim::Entity(t) => {
                    core.insert(*t);
                }
                RDim::Bucket(_) => {}
            }
        }
        core.extend(filters.iter().filter_map(RFilter::table));
        core.extend(time_col.map(|c| c.0));
        let prefer = metrics.iter().find_map(|m| match m {
            RMetric::Measure(mi) => Some(self.cat.measures[*mi].table),
            _ => None,
        });

        let bucketed = dims.iter().any(|d| matches!(d, RDim::Bucket(_)));
        let when = (range.is_some() || bucketed)
            .then(|| range.map_or_else(|| "the time buckets".to_owned(), DateRange::describe));
        let (base, mut required, shortcut, tc) =
            match self.tables_for(&core, &counted, prefer, time_col, when.as_deref()) {
                Ok(found) => found,
                Err(e) => {
                    // "products sold in 2024": no date on products, but its order lines lead
                    // to one. Only for figures that rows repeated by the join cannot change.
                    let safe = metrics.iter().all(|m| match m {
                        RMetric::Count { .. } | RMetric::CountDistinct(_) => true,
                        RMetric::Agg { agg, .. } => matches!(agg, Agg::Min | Agg::Max),
                        RMetric::Measure(_) | RMetric::PerEntity { .. } => false,
                    });
                    let dated = (0..self.cat.tables.len())
                        .filter(|t| self.cat.tables[*t].time_column.is_some())
                        .filter_map(|t| {
                            let mut more = core.clone();
                            more.insert(t);
                            let found = self
                                .tables_for(&more, &counted, prefer, time_col, when.as_deref())
                                .ok()?;
                            let mut joined = found.1.clone();
                            joined.extend(found.3.map(|c| c.0));
                            let joins = self.joins(found.0, &joined, true).ok()?.0.len();
                            Some((joins, t, found))
                        })
                        .min_by_key(|(joins, t, _)| (*joins, *t))
                        .map(|(_, _, found)| found);
                    match dated {
                        Some(found) if safe && time_col.is_none() => found,
                        _ => return Err(e),
                    }
                }
            };
        required.extend(tc.map(|c| c.0));
        required.remove(&base);
        let (joins, _) = self.joins(base, &required, true)?;

        let mut select = Select {
            from: self.from(base),
            joins,
            ..Select::default()
        };
        let mut aliases = Aliases::default();
        let mut dim_aliases = Vec::new();
        let mut bucket_aliases = Vec::new();
        let mut dim_words = Vec::new();
        let dim_cols: Vec<ColId> = dims
            .iter()
            .filter_map(|d| match d {
                RDim::Column(c) => Some(*c),
                _ => None,
            })
            .collect();
        for d in dims {
            match d {
                RDim::Column(c) => {
                    let a = aliases.take(&self.output_name(*c, &dim_cols));
                    select.columns.push((self.col_sql(*c), a.clone()));
                    select.group_by.push(self.col_sql(*c));
                    dim_aliases.push(a);
                    dim_words.push(self.col_words(*c));
                }
                RDim::Entity(t) => {
                    let info = &self.cat.tables[*t];
                    let noun = snake(&info.noun());
                    let mut any = false;
                    for (i, c) in [info.key, info.label].into_iter().flatten().enumerate() {
                        let name = &info.columns[c].name;
                        let want = if i == 1 && !name.to_lowercase().starts_with(&noun) {
                            format!("{noun}_{}", snake(name))
                        } else {
                            snake(name)
                        };
                        let a = aliases.take(&want);
                        select.columns.push((self.col_sql((*t, c)), a.clone()));
                        select.group_by.push(self.col_sql((*t, c)));
                        dim_aliases.push(a);
                        any = true;
                    }
                    if !any {
                        return Err(format!(
                            "I cannot tell the rows of {} apart (no id or name column) to \
                             group by them.",
                            info.words()
                        ));
                    }
                    dim_words.push(info.noun());
                }
                RDim::Bucket(g) => {
                    let Some(tc) = tc else { continue };
                    let expr = self
                        .d
                        .bucket(*g, &self.col_sql(tc), self.cat.column(tc).field_type);
                    let a = aliases.take(g.name());
                    select.columns.push((expr.clone(), a.clone()));
                    select.group_by.push(expr);
                    bucket_aliases.push(a);
                    dim_words.push(g.name().to_owned());
                }
            }
        }

        let mut metric_aliases = Vec::new();
        let mut metric_names = Vec::new();
        let mut metric_words = Vec::new();
        let of_rows = match share {
            Some(Share::OfRows(i)) => Some(i),
            _ => None,
        };
        let mut growth_aliases = Vec::new();
        for m in metrics {
            let (expr, name, words) = self.metric_sql(m, base, &shortcut)?;
            if let (Some((a, b)), Some(tc)) = (over.versus, tc) {
                let unsplittable = || {
                    format!(
                        "I cannot split {} between two periods; ask for it in each period \
                         separately.",
                        name.replace('_', " ")
                    )
                };
                let cond = |r: &DateRange| self.range_sql(r, tc).join(" AND ");
                let ea = conditional(&expr, &cond(a)).ok_or_else(unsplittable)?;
                let eb = conditional(&expr, &cond(b)).ok_or_else(unsplittable)?;
                let (old, new) = if a.start <= b.start {
                    (&ea, &eb)
                } else {
                    (&eb, &ea)
                };
                let change = format!("100.0 * ({new} - {old}) / NULLIF({old}, 0)");
                let aa = aliases.take(&format!("{name}_{}", period_label(a)));
                let ab = aliases.take(&format!("{name}_{}", period_label(b)));
                let ac = aliases.take(&format!("{name}_change_pct"));
                select.columns.push((ea.clone(), aa.clone()));
                select.columns.push((eb.clone(), ab));
                select.columns.push((change, ac));
                metric_aliases.push(aa);
                metric_names.push(name.replace('_', " "));
                metric_words.push(format!(
                    "{words} {} and {} side by side, with the change in percent",
                    a.describe(),
                    b.describe()
                ));
                continue;
            }
            let (expr, name, words) = match share {
                None => (expr, name, words),
                Some(Share::OfTotal) => (
                    format!("100.0 * {expr} / SUM({expr}) OVER ()"),
                    format!("{name}_share_pct"),
                    format!("{words}, as a percent of the total"),
                ),
                Some(Share::OfRows(i)) => {
                    let cond = self
                        .where_sql(&filters[i])
                        .ok_or_else(|| "I could not write the share's condition.".to_owned())?;
                    let part = counted_where(&expr, &cond).ok_or_else(|| {
                        "I can only take a percentage of rows counted one by one.".to_owned()
                    })?;
                    (
                        format!("100.0 * {part} / {expr}"),
                        format!("{name}_pct"),
                        format!(
                            "{words} and the percent of them where {}",
                            self.filter_words(&filters[i], &[])
                        ),
                    )
                }
            };
            let a = aliases.take(&name);
            select.columns.push((expr, a.clone()));
            if over.growth {
                growth_aliases.push(aliases.take(&format!("{name}_growth_pct")));
            }
            metric_aliases.push(a);
            metric_names.push(name.replace('_', " "));
            metric_words.push(words);
        }
        for (i, f) in filters.iter().enumerate() {
            if Some(i) == of_rows {
                continue;
            }
            if let Some(w) = self.where_sql(f) {
                select.filters.push(w);
            }
            if let RFilter::Having {
                metric,
                op,
                value,
                high,
            } = f
            {
                let (expr, _, _) = self.metric_sql(&metrics[*metric], base, &shortcut)?;
                select.having.push(self.compare(&expr, *op, *value, *high));
            }
        }
        if let (Some(r), Some(tc)) = (range, tc) {
            select.filters.extend(self.range_sql(r, tc));
        }
        if select.group_by.is_empty() && !select.having.is_empty() {
            return Err("Comparisons of totals need something to group by.".to_owned());
        }

        // Order: ranked metric; time buckets in time order; else biggest first.
        let q = |a: &String| self.d.ident(a);
        let others: Vec<String> = dim_aliases.iter().map(q).collect();
        let mut rank_words = String::new();
        if let Some(r) = ranking
            && !select.group_by.is_empty()
        {
            let by = r.by.min(metric_aliases.len().saturating_sub(1));
            let dir = if r.dir == Dir::Desc { "DESC" } else { "ASC" };
            select
                .order_by
                .push(format!("{} {dir} NULLS LAST", q(&metric_aliases[by])));
            select.order_by.extend(bucket_aliases.iter().map(q));
            select.order_by.extend(others);
            select.limit = Some(r.n);
            rank_words = format!(
                ", keeping the {} {} by {}",
                if r.dir == Dir::Desc { "top" } else { "bottom" },
                r.n,
                metric_names[by]
            );
        } else if !bucket_aliases.is_empty() {
            select.order_by.extend(bucket_aliases.iter().map(q));
            select.order_by.extend(others);
        } else if !dim_aliases.is_empty() {
            select
                .order_by
                .push(format!("{} DESC NULLS LAST", q(&metric_aliases[0])));
            select.order_by.extend(others);
        }

        let mut explanation = capitalize(&join_words(&metric_words, "and"));
        if !dim_words.is_empty() {
            explanation.push_str(&format!(" per {}", join_words(&dim_words, "and")));
        }
        let mut conds: Vec<String> = filters
            .iter()
            .enumerate()
            .filter(|(i, f)| !matches!(f, RFilter::Having { .. }) && Some(*i) != of_rows)
            .map(|(_, f)| f)
            .map(|f| self.filter_words(f, &metric_names))
            .collect();
        if let (Some(r), Some(tc), None) = (asked, tc, over.versus) {
            conds.push(format!("{} is {}", self.col_words(tc), r.describe()));
        }
        if !conds.is_empty() {
            explanation.push_str(&format!(", where {}", conds.join(" and ")));
        }
        let having: Vec<String> = filters
            .iter()
            .filter(|f| matches!(f, RFilter::Having { .. }))
            .map(|f| self.filter_words(f, &metric_names))
            .collect();
        if !having.is_empty() {
            explanation.push_str(&format!(", keeping groups whose {}", having.join(" and ")));
        }
        explanation.push_str(&rank_words);
        if over.growth
            && let (Some(g), [bucket]) = (grain, bucket_aliases.as_slice())
        {
            explanation.push_str(&format!(
                ", with each {0}'s change from the {0} before, in percent",
                g.name()
            ));
            explanation.push('.');
            let first = first_bucket.map(|d| match g {
                Grain::Year => d.format("%Y").to_string(),
                _ => self.d.date(bqai_core::model::FieldType::Date, d),
            });
            return Ok(Planned {
                sql: self.growth_sql(
                    &select,
                    bucket,
                    &dim_aliases,
                    &metric_aliases,
                    &growth_aliases,
                    first,
                ),
                explanation,
            });
        }
        if over.count_groups {
            let (noun, what) = match dims.first() {
                Some(RDim::Entity(t)) => (self.cat.tables[*t].noun(), self.cat.tables[*t].words()),
                Some(RDim::Column(c)) => (
                    self.cat.column(*c).name.clone(),
                    format!("distinct {} values", self.col_words(*c)),
                ),
                _ => return Err("I could not tell what to count.".to_owned()),
            };
            let grouped = Select {
                order_by: Vec::new(),
                limit: None,
                ..select
            };
            let count = self.d.ident(&format!("{}_count", snake(&noun)));
            return Ok(Planned {
                sql: format!(
                    "SELECT COUNT(*) AS {count}\nFROM (\n{}\n) AS g",
                    grouped.render(self.d)
                ),
                explanation: format!(
                    "Counts the {what}{}.",
                    explanation
                        .split_once(", keeping groups whose ")
                        .map(|(_, h)| format!(" whose {h}"))
                        .unwrap_or_default()
                ),
            });
        }
        explanation.push('.');
        Ok(Planned {
            sql: select.render(self.d),
            explanation,
        })
    }

    /// Each bucket's figures against the bucket before (`LAG` over the grouped rows, per
    /// combination of the other groups), without the extra bucket read before `first`.
    fn growth_sql(
        &self,
        grouped: &Select,
        bucket: &str,
        others: &[String],
        metrics: &[String],
        growth: &[String],
        first: Option<String>,
    ) -> String {
        let q = |a: &str| self.d.ident(a);
        let inner = Select {
            order_by: Vec::new(),
            limit: None,
            ..grouped.clone()
        };
        let partition = if others.is_empty() {
            String::new()
        } else {
            format!(
                "PARTITION BY {} ",
                others.iter().map(|a| q(a)).collect::<Vec<_>>().join(", ")
            )
        };
        let window = format!("OVER ({partition}ORDER BY {})", q(bucket));
        let shown: Vec<String> = grouped
            .columns
            .iter()
            .map(|(_, a)| q(a))
            .chain(growth.iter().map(|a| q(a)))
            .collect();
        let mut cols: Vec<String> = grouped.columns.iter().map(|(_, a)| q(a)).collect();
        for (m, g) in metrics.iter().zip(growth) {
            let prev = format!("LAG({}) {window}", q(m));
            cols.push(format!(
                "100.0 * ({} - {prev}) / NULLIF({prev}, 0) AS {}",
                q(m),
                q(g)
            ));
        }
        let order: Vec<String> = std::iter::once(bucket)
            .chain(others.iter().map(String::as_str))
            .map(q)
            .collect();
        let lagged = format!(
            "SELECT {}\nFROM (\n{}\n) AS g",
            cols.join(", "),
            inner.render(self.d)
        );
        match first {
            Some(first) => format!(
                "SELECT {}\nFROM (\n{lagged}\n) AS w\nWHERE {} >= {first}\nORDER BY {}",
                shown.join(", "),
                q(bucket),
                order.join(", ")
            ),
            None => format!("{lagged}\nORDER BY {}", order.join(", ")),
        }
    }

    /// The base table, the tables to join, the counted tables reached by a foreign key
    /// alone, and the date column (when `when` asks for one).
    #[allow(clippy::type_complexity)]
    fn tables_for(
        &self,
        core: &BTreeSet<usize>,
        counted: &[usize],
        prefer: Option<usize>,
        time_col: Option<ColId>,
        when: Option<&str>,
    ) -> Result<(usize, BTreeSet<usize>, Vec<(usize, ColId)>, Option<ColId>), String> {
        // A counted table joins only when it must: counting customers per order channel is
        // COUNT(DISTINCT orders.customer_id), no join to customers needed.
        let mut shortcut: Vec<(usize, ColId)> = Vec::new();
        let mut required = core.clone();
        for &t in counted {
            if core.contains(&t) {
                continue;
            }
            if !core.is_empty()
                && let Some(b) = self.base(core, prefer)
                && let Some(key) = self.cat.tables[t].key
                && let Some(e) = self.cat.parents(b).find(|e| e.to == (t, key))
            {
                shortcut.push((t, e.from));
                continue;
            }
            required.insert(t);
        }
        let base = self.base(&required, prefer).ok_or_else(|| {
            let names: Vec<String> = required
                .iter()
                .map(|t| self.cat.tables[*t].words())
                .collect();
            format!(
                "I could not find one table that joins {} without counting rows twice.",
                join_words(&names, "and")
            )
        })?;
        let tc = match when {
            Some(what) => Some(self.time_column(base, true, time_col, what)?),
            None => None,
        };
        Ok((base, required, shortcut, tc))
    }

    /// Expression, output name and words of a metric, computed at `base`.
    fn metric_sql(
        &self,
        m: &RMetric,
        base: usize,
        shortcut: &[(usize, ColId)],
    ) -> Result<(String, String, String), String> {
        Ok(match m {
            RMetric::Measure(mi) => {
                let me = &self.cat.measures[*mi];
                let name = me.name.replace('_', " ");
                let words = match me.description.as_deref() {
                    Some(d) => {
                        let d = lower_first(d.trim_end_matches('.'));
                        if d.to_lowercase().starts_with(&name.to_lowercase()) {
                            format!("computes {d}")
                        } else {
                            format!("computes {name} ({d})")
                        }
                    }
                    None => format!("computes {name}"),
                };
                (me.sql.clone(), snake(&me.name), words)
            }
            RMetric::Count { table, distinct } => {
                let info = &self.cat.tables[*table];
                let name = format!("{}_count", snake(&info.noun()));
                let words = format!(
                    "counts {}{}",
                    if *distinct { "distinct " } else { "" },
                    info.words()
                );
                let expr = if let Some((_, fk)) = shortcut.iter().find(|(t, _)| t == table) {
                    format!("COUNT(DISTINCT {})", self.col_sql(*fk))
                } else if *table == base {
                    match (distinct, info.key) {
                        (true, Some(k)) => format!("COUNT(DISTINCT {})", self.col_sql((*table, k))),
                        _ => "COUNT(*)".to_owned(),
                    }
                } else {
                    match info.key {
                        Some(k) => format!("COUNT(DISTINCT {})", self.col_sql((*table, k))),
                        None => {
                            return Err(format!(
                                "I cannot count {} here without an id column to tell them apart.",
                                info.words()
                            ));
                        }
                    }
                };
                (expr, name, words)
            }
            RMetric::PerEntity { table, per } => {
                let info = &self.cat.tables[*table];
                let fk = self
                    .cat
                    .key_to(*table, *per)
                    .map(|e| e.from)
                    .ok_or_else(|| {
                        format!(
                            "I could not find how {} point at {}.",
                            info.words(),
                            self.cat.tables[*per].words()
                        )
                    })?;
                let rows = if *table == base {
                    "COUNT(*)".to_owned()
                } else {
                    let k = info.key.ok_or_else(|| {
                        format!(
                            "I cannot count {} here without an id column to tell them apart.",
                            info.words()
                        )
                    })?;
                    format!("COUNT(DISTINCT {})", self.col_sql((*table, k)))
                };
                let per_noun = self.cat.tables[*per].noun();
                (
                    format!(
                        "{rows} * 1.0 / NULLIF(COUNT(DISTINCT {}), 0)",
                        self.col_sql(fk)
                    ),
                    format!("{}_per_{}", snake(&info.words()), snake(&per_noun)),
                    format!(
                        "averages the number of {} per {per_noun} (over the {} that have any)",
                        info.words(),
                        self.cat.tables[*per].words()
                    ),
                )
            }
            RMetric::CountDistinct(c) => (
                format!("COUNT(DISTINCT {})", self.col_sql(*c)),
                format!("{}_count", snake(&self.cat.column(*c).name)),
                format!("counts distinct {} values", self.col_words(*c)),
            ),
            RMetric::Agg { agg, col, .. } => {
                let (f, prefix, verb) = match agg {
                    Agg::Sum => ("SUM", "total", "sums"),
                    Agg::Avg => ("AVG", "avg", "averages"),
                    Agg::Min => ("MIN", "min", "finds the lowest"),
                    Agg::Max => ("MAX", "max", "finds the highest"),
                };
                let cname = snake(&self.cat.column(*col).name);
                (
                    format!("{f}({})", self.col_sql(*col)),
                    format!("{prefix}_{cname}"),
                    format!(
                        "{verb} {} of {}",
                        self.col_words(*col),
                        self.cat.tables[col.0].words()
                    ),
                )
            }
        })
    }
}

/// Figures over time asked for with the rest (`Intent::versus`, `Intent::growth`).
#[derive(Debug, Clone, Copy, Default)]
struct Over<'a> {
    versus: Option<&'a (DateRange, DateRange)>,
    growth: bool,
    /// The groups counted rather than listed (`Intent::count_groups`).
    count_groups: bool,
}

/// A period as part of an output name: "2024", "q3_2024", "march_2024".
fn period_label(r: &DateRange) -> String {
    let d = r.describe();
    let d = d
        .strip_prefix("in ")
        .or_else(|| d.strip_prefix("on "))
        .unwrap_or(&d);
    snake(d).trim_start_matches("c_").to_owned()
}

/// An aggregate restricted to the rows meeting `cond`, for one period of a comparison:
/// `SUM(x)` → `SUM(CASE WHEN cond THEN x ELSE 0 END)`, `AVG(x)` → `AVG(CASE WHEN cond THEN x
/// END)`, counts as in [`counted_where`]. `None` for anything but one aggregate call.
fn conditional(expr: &str, cond: &str) -> Option<String> {
    if let Some(c) = counted_where(expr, cond) {
        return Some(c);
    }
    let upper = expr.trim().to_uppercase();
    let f = ["SUM(", "AVG(", "MIN(", "MAX("]
        .into_iter()
        .find(|f| upper.starts_with(f))?;
    if !one_call(expr.trim(), f.len() - 1) {
        return None;
    }
    let expr = expr.trim();
    let inner = &expr[f.len()..expr.len() - 1];
    if inner.trim_start().to_uppercase().starts_with("DISTINCT ") {
        return None;
    }
    let otherwise = if f == "SUM(" { " ELSE 0" } else { "" };
    Some(format!(
        "{}CASE WHEN {cond} THEN {inner}{otherwise} END)",
        &expr[..f.len()]
    ))
}

/// Whether the parenthesis opened at byte `open` of `s` closes at its last character (one
/// call spans the whole expression).
fn one_call(s: &str, open: usize) -> bool {
    let mut depth = 0usize;
    for (i, c) in s.char_indices().skip_while(|(i, _)| *i < open) {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i == s.len() - 1;
                }
            }
            _ => {}
        }
    }
    false
}

/// Output names, made unique.
#[derive(Default)]
struct Aliases(Vec<String>);

impl Aliases {
    fn take(&mut self, want: &str) -> String {
        let base = snake(want);
        let mut name = base.clone();
        let mut n = 2;
        while self.0.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.0.push(name.clone());
        name
    }
}

fn cmp_words(op: CmpOp, value: f64, high: Option<f64>) -> String {
    let n = crate::understand::fmt_number;
    match (op, high) {
        (CmpOp::Between, Some(h)) => format!("between {} and {}", n(value.min(h)), n(value.max(h))),
        _ => format!("{} {}", op.words(), n(value)),
    }
}

fn join_words(items: &[String], conj: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} {conj} {last}", init.join(", ")),
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match (c.next(), c.clone().next()) {
        // Keep acronyms ("USD …").
        (Some(f), Some(n)) if n.is_uppercase() => format!("{f}{}", c.as_str()),
        (Some(f), _) => f.to_lowercase().collect::<String>() + c.as_str(),
        _ => String::new(),
    }
}

/// Whether a measure's SQL is one SUM or COUNT over rows (`SUM(a * b)`), so its share of a
/// total means something; a ratio (`SUM(x) / COUNT(y)`) or an average does not add up.
fn one_additive_aggregate(sql: &str) -> bool {
    let s = sql.trim();
    let upper = s.to_uppercase();
    ["SUM(", "COUNT("]
        .iter()
        .find(|f| upper.starts_with(**f))
        .is_some_and(|f| one_call(s, f.len() - 1))
}

/// A count restricted to the rows meeting `cond`: `COUNT(*)` → `SUM(CASE WHEN cond THEN 1
/// ELSE 0 END)`, `COUNT(DISTINCT x)` → `COUNT(DISTINCT CASE WHEN cond THEN x END)`.
fn counted_where(count: &str, cond: &str) -> Option<String> {
    if count == "COUNT(*)" {
        return Some(format!("SUM(CASE WHEN {cond} THEN 1 ELSE 0 END)"));
    }
    let inner = count.strip_prefix("COUNT(DISTINCT ")?.strip_suffix(')')?;
    Some(format!("COUNT(DISTINCT CASE WHEN {cond} THEN {inner} END)"))
}
