//! Understanding a question: words → mentions (of tables, columns, measures, values and
//! function words) → an [`Intent`]: what to compute, grouped how, filtered how, ranked how.
//!
//! Small pattern readers run in a fixed order, each claiming the mentions it explains:
//! dates first (they own their numbers), then comparisons ("unit price over 100"), ranking
//! numbers ("top 5"), values ("Germany or France"), counts ("how many orders"), aggregates
//! ("average discount"), groupings ("by category and channel"), superlatives ("the most
//! orders"), and what is left. A word nobody explains makes the planner refuse rather than
//! guess: a question half understood gets no SQL.

use crate::dates::{self, DateRange};
use crate::lexicon::{
    Agg, Builtin, CmpOp, Dir, Grain, Refusal, TokKind, Token, builtins, is_filler, refusal,
    tokenize, within_one_edit,
};
use crate::schema::{Catalog, ColId, Target};

/// Candidate columns for one mention (several when a name is ambiguous, like `unit_price`
/// in two tables); the plan picks the one closest to the rest of the question.
pub(crate) type Cands = Vec<ColId>;

/// Something to compute.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Metric {
    /// A named measure of the semantic model.
    Measure(usize),
    /// Rows (entities) of a table.
    Count { table: usize, distinct: bool },
    /// Distinct values of a column.
    CountDistinct(Cands),
    /// An aggregate of a column; `explicit` when the question named the function.
    Agg {
        agg: Agg,
        col: Cands,
        explicit: bool,
    },
    /// Rows of `table` per row of `per` that has any ("average number of orders per
    /// customer"): `table` points at `per` by a foreign key.
    PerEntity { table: usize, per: usize },
}

/// "customers who never ordered", "agents with no tickets": rows of `owner` that no row of
/// `table` (meeting the absence's own conditions) points at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Absent {
    /// The table without rows ("orders").
    pub(crate) table: usize,
    /// The table whose rows have none ("customers"); `table` points at it by a foreign key.
    pub(crate) owner: usize,
    /// Conditions on the missing rows ("never ordered on mobile").
    pub(crate) filters: Vec<Filter>,
    /// Dates of the missing rows ("did not order in 2025").
    pub(crate) range: Option<DateRange>,
    pub(crate) time_column: Option<Cands>,
}

/// Something to group by.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dim {
    Column(Cands),
    /// The table's rows themselves ("by customer", "top 5 products").
    Entity(usize),
    Bucket(Grain),
}

/// What a comparison applies to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CmpTarget {
    Column(Cands),
    Metric(Metric),
}

/// A restriction on rows (or groups).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Filter {
    /// Column equals one of the values; one option per candidate column.
    Values {
        options: Vec<(ColId, Vec<String>)>,
        negated: bool,
    },
    /// Column or metric compared with a number.
    Compare {
        target: CmpTarget,
        op: CmpOp,
        value: f64,
        high: Option<f64>,
    },
}

/// Keep only the first `n` groups (or rows), ordered by the ranking metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ranking {
    pub(crate) dir: Dir,
    pub(crate) n: u64,
    /// Index of the metric ranked by.
    pub(crate) by: usize,
}

/// Rows rather than aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Listing {
    /// Columns asked for (all of the subject table when empty).
    pub(crate) columns: Vec<Cands>,
    pub(crate) distinct: bool,
}

/// What the question asks, in terms of the catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Intent {
    pub(crate) metrics: Vec<Metric>,
    pub(crate) dims: Vec<Dim>,
    pub(crate) filters: Vec<Filter>,
    pub(crate) range: Option<DateRange>,
    /// The date column named in the question ("signed up in 2024"), if any.
    pub(crate) time_column: Option<Cands>,
    pub(crate) ranking: Option<Ranking>,
    /// The table the question is about (listed, or grouped by when ranking).
    pub(crate) subject: Option<usize>,
    /// Other tables the question mentions ("customers who ordered …"): joined.
    pub(crate) tables: Vec<usize>,
    pub(crate) listing: Option<Listing>,
    /// "share of revenue by channel", "% of orders cancelled": the metric as a percent of its
    /// total (over the groups, or over the rows without the question's one value filter).
    pub(crate) share: bool,
    /// Rows of the subject with no rows in another table ("customers who never ordered").
    pub(crate) absent: Option<Absent>,
    /// "2024 vs 2023": every figure once per period, side by side, with the change.
    pub(crate) versus: Option<(DateRange, DateRange)>,
    /// "revenue growth by month": each time bucket's figure against the bucket before.
    pub(crate) growth: bool,
    /// "the cheapest product in each category": the ranking is of the rows within each group
    /// (one row per group), not of the groups.
    pub(crate) per_group: bool,
    /// "how many customers have more than 20 orders": the groups that pass the comparison,
    /// counted.
    pub(crate) count_groups: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum MKind {
    Schema(Vec<Target>),
    Word(Builtin),
    Number(f64),
    Percent,
    Currency,
}

#[derive(Debug, Clone)]
pub(crate) struct Mention {
    pub(crate) kind: MKind,
    /// The words as written.
    pub(crate) text: String,
    /// Written in the plural ("countries").
    plural: bool,
    used: bool,
}

impl Mention {
    pub(crate) fn targets(&self) -> &[Target] {
        match &self.kind {
            MKind::Schema(t) => t,
            _ => &[],
        }
    }

    pub(crate) fn measure(&self) -> Option<usize> {
        match self.targets().first() {
            Some(Target::Measure(m)) => Some(*m),
            _ => None,
        }
    }

    pub(crate) fn table(&self) -> Option<usize> {
        match self.targets().first() {
            Some(Target::Table(t)) => Some(*t),
            _ => None,
        }
    }

    pub(crate) fn columns(&self) -> Option<Cands> {
        let cols: Vec<ColId> = self
            .targets()
            .iter()
            .filter_map(|t| match t {
                Target::Column(c) => Some(*c),
                _ => None,
            })
            .collect();
        (!cols.is_empty()).then_some(cols)
    }

    pub(crate) fn values(&self) -> Vec<(ColId, usize)> {
        self.targets()
            .iter()
            .filter_map(|t| match t {
                Target::Value(c, v) => Some((*c, *v)),
                _ => None,
            })
            .collect()
    }

    pub(crate) fn word(&self) -> Option<Builtin> {
        match self.kind {
            MKind::Word(b) => Some(b),
            _ => None,
        }
    }

    pub(crate) fn number(&self) -> Option<f64> {
        match self.kind {
            MKind::Number(n) => Some(n),
            _ => None,
        }
    }
}

/// Reads a question against a catalog. `Err` is the reason to give the person who asked.
pub(crate) fn understand(
    question: &str,
    catalog: &Catalog,
    today: Option<chrono::NaiveDate>,
) -> Result<Intent, String> {
    let tokens = tokenize(question);
    if !tokens.iter().any(Token::is_word) {
        return Err("The question has no words I could read.".to_owned());
    }
    if let Some((kind, word)) = refusal(&tokens, &|s| catalog.knows_word(s)) {
        return Err(match kind {
            Refusal::BeyondSql => format!(
                "The built-in planner only computes figures that are in the data (counts, \
                 totals, averages, rankings over time or by category); \"{word}\" asks for an \
                 explanation or a prediction, which needs an analyst or an LLM-backed generator."
            ),
            Refusal::Write => format!(
                "I only read data: \"{word}\" asks to change it, and no question can do that \
                 here."
            ),
        });
    }
    let mut used = vec![false; tokens.len()];
    let versus = dates::extract_versus(&tokens, &mut used, today);
    let range = dates::extract(&tokens, &mut used, today)
        .map_err(|e| format!("I could not use the dates: {e}."))?;
    if let Some(word) = crate::lexicon::relative_refusal(&tokens, &used) {
        return Err(relative_date_refusal(&word));
    }
    let (ms, unknown) = mentions(&tokens, &used, catalog);
    let mut reader = Reader {
        ms,
        cat: catalog,
        intent: Intent {
            range,
            versus,
            ..Intent::default()
        },
        rank: None,
        which: Vec::new(),
        subject_plural: true,
        per_entities: Vec::new(),
        absent_at: None,
    };
    if !unknown.is_empty() {
        return Err(reader.not_understood(&unknown));
    }
    reader.read()?;
    Ok(reader.intent)
}

/// Why a relative date the planner could not place is refused, and what it reads instead.
fn relative_date_refusal(word: &str) -> String {
    format!(
        "I could not place \"{word}\" in time. Dates relative to today that I read: today, \
         yesterday, this or last week, month, quarter or year, the past 30 days (or weeks, \
         months, years), 3 days ago, Q3 last year, year to date; or give explicit dates (\"in \
         2025\", \"since 2025-06-01\", \"between 2025-01-01 and 2025-03-31\")."
    )
}

/// Matches phrases longest first; returns the mentions and the words nothing explains.
pub(crate) fn mentions(
    tokens: &[Token],
    used: &[bool],
    cat: &Catalog,
) -> (Vec<Mention>, Vec<String>) {
    let builtins = builtins();
    let mut out = Vec::new();
    let mut unknown = Vec::new();
    // A question typed in capitals says nothing about abbreviations.
    let words = tokens.iter().filter(|t| t.is_word()).count();
    let shouting = tokens.iter().filter(|t| t.upper).count() * 2 > words;
    let mut i = 0;
    while i < tokens.len() {
        if used[i] {
            i += 1;
            continue;
        }
        // An abbreviation matches a word in capitals or after "the" ("the US", "the uk"), not
        // a pronoun ("show us").
        let written = |t: &crate::schema::Term| {
            !t.abbreviation
                || (tokens[i].upper && !shouting)
                || i.checked_sub(1).is_some_and(|p| tokens[p].text == "the")
        };
        // Whether `words` are the unused words at `at`.
        let fits_at = |at: usize, words: &[String]| {
            !words.is_empty()
                && at + words.len() <= tokens.len()
                && words.iter().enumerate().all(|(k, w)| {
                    let t = &tokens[at + k];
                    !used[at + k]
                        && matches!(t.kind, TokKind::Word | TokKind::Symbol)
                        && &t.stem == w
                })
        };
        let fits = |words: &[String]| fits_at(i, words);
        let builtin = builtins
            .iter()
            .find(|(w, _)| fits(w))
            .map(|(w, b)| (w.len(), *b));
        let term_len = cat
            .terms
            .iter()
            .filter(|t| written(t) && fits(&t.words))
            .map(|t| t.words.len())
            .max()
            .unwrap_or(0);
        let text_of = |n: usize| {
            tokens[i..i + n]
                .iter()
                .map(|t| t.text.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let plural_at = |n: usize| {
            let last = &tokens[i + n - 1];
            last.is_word() && last.text != last.stem
        };
        // "number of order lines": the measure "number of orders" would take "order" from
        // the table "order lines"; the function word ("number of") and the longer noun win.
        let split_by_builtin = builtin.is_some_and(|(n, _)| {
            n < term_len
                && cat
                    .terms
                    .iter()
                    .any(|t| n + t.words.len() > term_len && fits_at(i + n, &t.words))
        });
        if term_len > 0 && term_len > builtin.map_or(0, |b| b.0) && !split_by_builtin {
            let mut targets: Vec<Target> = cat
                .terms
                .iter()
                .filter(|t| t.words.len() == term_len && written(t) && fits(&t.words))
                .map(|t| t.target)
                .collect();
            let best = targets.iter().map(|t| t.rank()).min().unwrap_or(0);
            targets.retain(|t| t.rank() == best);
            targets.sort();
            targets.dedup();
            out.push(Mention {
                kind: MKind::Schema(targets),
                text: text_of(term_len),
                plural: plural_at(term_len),
                used: false,
            });
            i += term_len;
            continue;
        }
        if let Some((n, b)) = builtin {
            out.push(Mention {
                kind: MKind::Word(b),
                text: text_of(n),
                plural: false,
                used: false,
            });
            i += n;
            continue;
        }
        let t = &tokens[i];
        let verb = negated_verb(tokens, i, cat);
        let kind = match &t.kind {
            TokKind::Number(n) => Some(MKind::Number(*n)),
            TokKind::Word if verb.is_some() => verb.map(MKind::Schema),
            TokKind::Symbol if t.text == "%" => Some(MKind::Percent),
            TokKind::Symbol if t.text == "$" => Some(MKind::Currency),
            TokKind::Word if is_filler(&t.text) && (shouting || !t.upper) => None,
            TokKind::Word => match fuzzy(&t.stem, cat) {
                Some(targets) => Some(MKind::Schema(targets)),
                None => {
                    unknown.push(t.text.clone());
                    None
                }
            },
            // Dates outside a date expression, stray symbols.
            _ => {
                unknown.push(t.text.clone());
                None
            }
        };
        if let Some(kind) = kind {
            out.push(Mention {
                kind,
                text: t.text.clone(),
                plural: plural_at(1),
                used: false,
            });
        }
        i += 1;
    }
    (out, unknown)
}

/// "never ordered": a verb right after a negation that names a table ("ordered" → `orders`),
/// for [`Reader::absences`]. Elsewhere such verbs are filler ("customers who ordered in 2024"
/// names the orders by their date).
fn negated_verb(tokens: &[Token], i: usize, cat: &Catalog) -> Option<Vec<Target>> {
    // "never been ordered", "not yet ordered"
    let mut p = i.checked_sub(1)?;
    while matches!(tokens[p].text.as_str(), "been" | "be" | "ever" | "yet") {
        p = p.checked_sub(1)?;
    }
    let prev = &tokens[p];
    if !matches!(
        prev.text.as_str(),
        "never" | "not" | "didnt" | "dont" | "doesnt" | "havent" | "hasnt"
    ) {
        return None;
    }
    let stem = &tokens[i].stem;
    let roots = [stem.strip_suffix("ed"), stem.strip_suffix('d')];
    let targets: Vec<Target> = cat
        .terms
        .iter()
        .filter(|t| matches!(t.target, Target::Table(_)))
        .filter(|t| matches!(t.words.as_slice(), [w] if roots.contains(&Some(w.as_str()))))
        .map(|t| t.target)
        .collect();
    (!targets.is_empty()).then_some(targets)
}

/// A single-word term one typo away from `stem` ("canceled" → `cancelled`), if exactly one
/// kind of thing is that close.
fn fuzzy(stem: &str, cat: &Catalog) -> Option<Vec<Target>> {
    if stem.chars().count() < 5 {
        return None;
    }
    let mut targets: Vec<Target> = cat
        .terms
        .iter()
        .filter(|t| t.words.len() == 1 && t.words[0].chars().count() >= 5)
        .filter(|t| within_one_edit(stem, &t.words[0]))
        .map(|t| t.target)
        .collect();
    let best = targets.iter().map(|t| t.rank()).min()?;
    targets.retain(|t| t.rank() == best);
    targets.sort();
    targets.dedup();
    Some(targets)
}

/// Where a superlative or "top" word was and what it said.
#[derive(Debug, Clone, Copy)]
struct RankWord {
    dir: Dir,
    n: Option<u64>,
    /// "top"/"bottom"/"best"/"worst" name the ranked things; "most"/"highest" the measure.
    top: bool,
}

struct Reader<'a> {
    ms: Vec<Mention>,
    cat: &'a Catalog,
    intent: Intent,
    rank: Option<RankWord>,
    /// Dimensions introduced by "which"/"what" (and whether written in the plural).
    which: Vec<(Dim, bool)>,
    /// Whether the subject was written in the plural ("the most expensive product": one).
    subject_plural: bool,
    /// Tables grouped by with "per" ("orders per customer").
    per_entities: Vec<usize>,
    /// Where "never"/"no" was read, the table without rows and the table whose rows have
    /// none.
    absent_at: Option<(usize, usize, usize)>,
}

fn is_top_word(text: &str) -> bool {
    matches!(text, "top" | "bottom" | "best" | "worst" | "leading")
}

impl Reader<'_> {
    fn read(&mut self) -> Result<(), String> {
        self.absences();
        self.comparisons()?;
        self.shares();
        self.growths();
        self.rank_numbers();
        self.values();
        self.counts()?;
        self.aggregates()?;
        self.ordinals()?;
        self.groupings()?;
        self.superlatives()?;
        self.whiches();
        self.grains();
        self.leftovers()?;
        self.finish()
    }

    // ---- helpers ---------------------------------------------------------------------------

    fn unused(&self, i: usize) -> Option<&Mention> {
        self.ms.get(i).filter(|m| !m.used)
    }

    fn is_word(&self, i: usize, b: Builtin) -> bool {
        self.ms.get(i).and_then(Mention::word) == Some(b)
    }

    /// Whether something is computed (a metric, or a comparison of one).
    fn computes(&self) -> bool {
        !self.intent.metrics.is_empty()
            || self.intent.filters.iter().any(|f| {
                matches!(
                    f,
                    Filter::Compare {
                        target: CmpTarget::Metric(_),
                        ..
                    }
                )
            })
    }

    fn add_metric(&mut self, m: Metric) -> usize {
        if let Some(i) = self.intent.metrics.iter().position(|x| *x == m) {
            return i;
        }
        self.intent.metrics.push(m);
        self.intent.metrics.len() - 1
    }

    fn add_dim(&mut self, d: Dim) {
        if !self.intent.dims.contains(&d) {
            self.intent.dims.push(d);
        }
    }

    fn numeric(&self, cols: &Cands) -> Cands {
        cols.iter()
            .copied()
            .filter(|c| self.cat.column(*c).is_numeric())
            .collect()
    }

    fn is_time_column(&self, cols: &Cands) -> bool {
        cols.iter().all(|c| self.cat.column(*c).is_temporal())
    }

    /// A numeric column that is a quantity (not a key), as opposed to a grouping attribute.
    fn is_measure_column(&self, cols: &Cands) -> bool {
        cols.iter().all(|c| {
            let col = self.cat.column(*c);
            col.is_numeric() && col.role == bqai_core::semantic::ColumnRole::Measure
        })
    }

    /// The default aggregate of a numeric column: averages for prices and rates, sums else.
    fn default_agg(&self, cols: &Cands) -> Agg {
        if cols
            .iter()
            .any(|c| self.cat.column(*c).averages_naturally())
        {
            Agg::Avg
        } else {
            Agg::Sum
        }
    }

    fn not_understood(&self, unknown: &[String]) -> String {
        let words = unknown
            .iter()
            .map(|w| format!("\"{w}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let known: Vec<String> = self
            .ms
            .iter()
            .filter(|m| matches!(m.kind, MKind::Schema(_)))
            .map(|m| format!("\"{}\"", m.text))
            .collect();
        let mut msg = if known.is_empty() {
            format!("I could not match {words} to anything in this dataset")
        } else {
            format!(
                "I recognised {} but could not match {words} to any table, column, measure or \
                 value of this dataset",
                known.join(", ")
            )
        };
        msg.push_str(". ");
        msg.push_str(&self.vocabulary_hint());
        msg
    }

    /// A short reminder of what can be asked about.
    fn vocabulary_hint(&self) -> String {
        let measures: Vec<String> = self
            .cat
            .measures
            .iter()
            .map(|m| m.name.replace('_', " "))
            .collect();
        let tables: Vec<String> = self.cat.tables.iter().map(|t| t.words()).collect();
        let mut hint = format!("Tables: {}", tables.join(", "));
        if !measures.is_empty() {
            hint.push_str(&format!("; measures: {}", measures.join(", ")));
        }
        hint.push('.');
        hint
    }

    // ---- readers ---------------------------------------------------------------------------

    /// "unit price over 100", "quantity between 2 and 5", "customers with more than 20
    /// orders", "revenue above 1m", "at least 5 units".
    fn comparisons(&mut self) -> Result<(), String> {
        for i in 0..self.ms.len() {
            let Some(Builtin::Cmp(op)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            // "5 or more orders": the number comes first.
            let postfix = self.ms[i].text.starts_with("or ");
            let (value, mut after) = if postfix {
                match i.checked_sub(1).and_then(|p| self.unused(p)?.number()) {
                    Some(v) => (v, i + 1),
                    None => continue,
                }
            } else {
                let mut j = i + 1;
                if matches!(self.ms.get(j).map(|m| &m.kind), Some(MKind::Currency)) {
                    j += 1;
                }
                match self.unused(j).and_then(Mention::number) {
                    Some(v) => (v, j + 1),
                    None => continue,
                }
            };
            let mut value = value;
            let mut high = None;
            if matches!(self.ms.get(after).map(|m| &m.kind), Some(MKind::Percent)) {
                value /= 100.0;
                after += 1;
            }
            if op == CmpOp::Between {
                // "between $20 and $50"
                let dollars = usize::from(matches!(
                    self.ms.get(after + 1).map(|m| &m.kind),
                    Some(MKind::Currency)
                ));
                let hi = self
                    .is_word(after, Builtin::And)
                    .then(|| self.unused(after + 1 + dollars).and_then(Mention::number))
                    .flatten();
                let Some(mut hi) = hi else { continue };
                after += 2 + dollars;
                if matches!(self.ms.get(after).map(|m| &m.kind), Some(MKind::Percent)) {
                    hi /= 100.0;
                    value /= 100.0;
                    after += 1;
                }
                high = Some(hi);
            }
            // What is compared: the column or measure just before ("unit price over 100"),
            // else what follows ("more than 20 orders").
            let before = {
                let mut p = i;
                let mut found = None;
                while p > 0 {
                    p -= 1;
                    let m = &self.ms[p];
                    if postfix && p + 1 == i {
                        continue; // the number itself
                    }
                    if matches!(m.word(), Some(Builtin::With)) {
                        continue;
                    }
                    // Only something numeric: in "categories with more than 20000 units
                    // sold" what is compared follows the number.
                    let numeric = m.columns().is_some_and(|c| !self.numeric(&c).is_empty());
                    if !m.used && (numeric || m.measure().is_some()) {
                        found = Some(p);
                    }
                    break;
                }
                found
            };
            let after_target = self
                .unused(after)
                .filter(|m| m.table().is_some() || m.measure().is_some() || m.columns().is_some())
                .map(|_| after);
            // "products that cost more than 100", "products under $10": the price of the
            // things named, when they have exactly one price column.
            if before.or(after_target).is_none()
                && let Some(col) = self.implied_price(i)
            {
                for k in i..after {
                    self.ms[k].used = true;
                }
                if let Some(p) = i.checked_sub(1)
                    && self.ms[p].word() == Some(Builtin::Costs)
                {
                    self.ms[p].used = true;
                }
                self.intent.filters.push(Filter::Compare {
                    target: CmpTarget::Column(vec![col]),
                    op,
                    value,
                    high,
                });
                continue;
            }
            let Some(t) = before.or(after_target) else {
                // "orders over $500": which figure of the orders? Say how to name it.
                let example = match (
                    self.ms[..i].iter().rev().find_map(Mention::table),
                    self.cat.measures.first(),
                ) {
                    (Some(table), Some(m)) => format!(
                        "\"{} with {} {} {}\"",
                        self.cat.tables[table].words(),
                        m.name.replace('_', " "),
                        self.ms[i].text,
                        fmt_number(value)
                    ),
                    _ => "\"unit price over 100\"".to_owned(),
                };
                return Err(format!(
                    "I could not tell what \"{} {}\" applies to; name the column or figure \
                     compared, e.g. {example}.",
                    self.ms[i].text,
                    fmt_number(value)
                ));
            };
            let m = &self.ms[t];
            // "average unit price above 200": the aggregate is compared, per group.
            let agg_before = t
                .checked_sub(1)
                .filter(|&p| t < i && !self.ms[p].used)
                .and_then(|p| match self.ms[p].word() {
                    Some(Builtin::Agg(a)) => Some((p, a)),
                    _ => None,
                });
            let target = if let (Some((p, agg)), Some(cols)) = (agg_before, m.columns()) {
                let numeric = self.numeric(&cols);
                let col = if numeric.is_empty() || matches!(agg, Agg::Min | Agg::Max) {
                    cols
                } else {
                    numeric
                };
                self.ms[p].used = true;
                CmpTarget::Metric(Metric::Agg {
                    agg,
                    col,
                    explicit: true,
                })
            } else if let Some(mi) = m.measure() {
                CmpTarget::Metric(Metric::Measure(mi))
            } else if let Some(table) = m.table() {
                CmpTarget::Metric(Metric::Count {
                    table,
                    distinct: false,
                })
            } else if let Some(cols) = m.columns() {
                let numeric = self.numeric(&cols);
                if numeric.is_empty() {
                    return Err(format!(
                        "\"{}\" is not a number, so it cannot be compared with {}.",
                        m.text,
                        fmt_number(value)
                    ));
                }
                CmpTarget::Column(numeric)
            } else {
                continue;
            };
            for k in [i, t] {
                self.ms[k].used = true;
            }
            for k in (i + 1)..after {
                self.ms[k].used = true;
            }
            if postfix && let Some(p) = i.checked_sub(1) {
                self.ms[p].used = true;
            }
            self.intent.filters.push(Filter::Compare {
                target,
                op,
                value,
                high,
            });
        }
        Ok(())
    }

    /// "top 5", "5 best", "bottom 3", "the 3 countries with the highest revenue".
    fn rank_numbers(&mut self) {
        for i in 0..self.ms.len() {
            let Some(Builtin::Rank(dir)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            let top = is_top_word(&self.ms[i].text);
            let as_n = |m: &Mention| {
                m.number()
                    .filter(|n| n.fract() == 0.0 && (1.0..=10_000.0).contains(n))
                    // A small whole number, checked just above.
                    .map(|n| {
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let n = n as u64;
                        n
                    })
            };
            let mut n = None;
            if let Some(v) = self.unused(i + 1).and_then(as_n) {
                self.ms[i + 1].used = true;
                n = Some(v);
            } else if let Some(p) = i.checked_sub(1)
                && let Some(v) = self.unused(p).and_then(as_n)
            {
                self.ms[p].used = true;
                n = Some(v);
            }
            match &mut self.rank {
                Some(r) => {
                    r.n = r.n.or(n);
                    r.top |= top;
                }
                None => self.rank = Some(RankWord { dir, n, top }),
            }
        }
        // "the 3 countries with the highest revenue": a number right before a noun.
        if let Some(r) = self.rank.as_mut().filter(|r| r.n.is_none()) {
            for i in 0..self.ms.len().saturating_sub(1) {
                let m = &self.ms[i];
                let next = &self.ms[i + 1];
                let noun = next.table().is_some() || next.columns().is_some();
                if !m.used
                    && noun
                    && let Some(v) = m.number()
                    && v.fract() == 0.0
                    && (1.0..=10_000.0).contains(&v)
                {
                    // Small whole number, checked just above.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    {
                        r.n = Some(v as u64);
                    }
                    self.ms[i].used = true;
                    break;
                }
            }
        }
    }

    /// "Germany", "Germany or France", "not cancelled", "in the Electronics category".
    fn values(&mut self) {
        let mut i = 0;
        while i < self.ms.len() {
            let first = self.ms[i].values();
            if first.is_empty() || self.ms[i].used {
                i += 1;
                continue;
            }
            let start = i;
            let mut options: Vec<(ColId, Vec<usize>)> =
                first.iter().map(|(c, v)| (*c, vec![*v])).collect();
            let mut end = i + 1;
            // "Germany or France", "web, mobile and store".
            while matches!(
                self.ms.get(end).and_then(Mention::word),
                Some(Builtin::Or | Builtin::And)
            ) {
                let next = self
                    .ms
                    .get(end + 1)
                    .map(Mention::values)
                    .unwrap_or_default();
                let shared: Vec<(ColId, Vec<usize>)> = options
                    .iter()
                    .filter_map(|(c, vs)| {
                        let more: Vec<usize> = next
                            .iter()
                            .filter(|(nc, _)| nc == c)
                            .map(|(_, v)| *v)
                            .collect();
                        (!more.is_empty()).then(|| (*c, vs.iter().copied().chain(more).collect()))
                    })
                    .collect();
                if shared.is_empty() {
                    break;
                }
                options = shared;
                end += 2;
            }
            // A column named next to the value picks among ambiguous ones ("the Books
            // category", "country Germany").
            for q in [start.checked_sub(1), Some(end)].into_iter().flatten() {
                if let Some(cols) = self.unused(q).and_then(Mention::columns) {
                    let kept: Vec<(ColId, Vec<usize>)> = options
                        .iter()
                        .filter(|(c, _)| cols.contains(c))
                        .cloned()
                        .collect();
                    if !kept.is_empty() {
                        options = kept;
                        self.ms[q].used = true;
                        break;
                    }
                }
            }
            let negated = start
                .checked_sub(1)
                .and_then(|p| self.unused(p))
                .is_some_and(|m| m.word() == Some(Builtin::Not));
            if negated {
                self.ms[start - 1].used = true;
            }
            for k in start..end {
                self.ms[k].used = true;
            }
            let options = options
                .into_iter()
                .map(|(c, vs)| {
                    let col = self.cat.column(c);
                    let mut values: Vec<String> = Vec::new();
                    for v in vs {
                        if let Some(s) = col.values.get(v)
                            && !values.contains(s)
                        {
                            values.push(s.clone());
                        }
                    }
                    (c, values)
                })
                .collect();
            self.intent
                .filters
                .push(Filter::Values { options, negated });
            i = end;
        }
    }

    /// "how many orders", "number of distinct customers", "count of brands".
    fn counts(&mut self) -> Result<(), String> {
        for i in 0..self.ms.len() {
            if self.unused(i).and_then(Mention::word) != Some(Builtin::Count) {
                continue;
            }
            let mut j = i + 1;
            let mut distinct = false;
            loop {
                match self.ms.get(j) {
                    Some(m) if m.word() == Some(Builtin::Distinct) => distinct = true,
                    Some(m) if m.word() == Some(Builtin::Agg(Agg::Sum)) => {}
                    Some(m) if m.used => {}
                    _ => break,
                }
                self.ms[j].used = true;
                j += 1;
            }
            let Some(m) = self.unused(j) else {
                return Err(format!(
                    "I could not tell what to count after \"{}\". {}",
                    self.ms[i].text,
                    self.vocabulary_hint()
                ));
            };
            let metric = if let Some(table) = m.table() {
                Metric::Count { table, distinct }
            } else if let Some(mi) = m.measure() {
                Metric::Measure(mi)
            } else if let Some(cols) = m.columns() {
                // Counting a table's own key counts the table.
                match cols.as_slice() {
                    [c] if self.cat.tables[c.0].key == Some(c.1) => Metric::Count {
                        table: c.0,
                        distinct,
                    },
                    _ => Metric::CountDistinct(cols),
                }
            } else {
                return Err(format!(
                    "I could not tell what to count in \"{} {}\". {}",
                    self.ms[i].text,
                    m.text,
                    self.vocabulary_hint()
                ));
            };
            self.ms[i].used = true;
            self.ms[j].used = true;
            // "average number of orders per customer": a count per entity, averaged.
            let mut metric = metric;
            if let Metric::Count { table, .. } = metric
                && let Some(p) = i.checked_sub(1)
                && self.unused(p).and_then(Mention::word) == Some(Builtin::Agg(Agg::Avg))
                && let Some(per) = self.per_entity(table, j)
            {
                self.ms[p].used = true;
                metric = Metric::PerEntity { table, per };
            }
            self.add_metric(metric);
        }
        Ok(())
    }

    /// The table whose rows a measure counts one by one (`COUNT(*)`, or `COUNT(DISTINCT`
    /// its key`)`), if it is such a count.
    fn counted_rows(&self, mi: usize) -> Option<usize> {
        let m = &self.cat.measures[mi];
        let t = &self.cat.tables[m.table];
        let sql = m.sql.split_whitespace().collect::<Vec<_>>().join(" ");
        let by_key = t.key.is_some_and(|k| {
            sql.eq_ignore_ascii_case(&format!("COUNT(DISTINCT {}.{})", t.name, t.columns[k].name))
        });
        (by_key || sql.eq_ignore_ascii_case("COUNT(*)")).then_some(m.table)
    }

    /// The table `table`'s rows are counted per when "per <table>" follows `after` and
    /// `table` points at it by a foreign key ("orders per customer"); takes those words.
    fn per_entity(&mut self, table: usize, after: usize) -> Option<usize> {
        let k = (after + 1..self.ms.len()).find(|&k| {
            self.unused(k)
                .is_some_and(|m| m.word() == Some(Builtin::By) && m.text == "per")
        })?;
        let per = self.unused(k + 1)?.table()?;
        if per == table || self.cat.key_to(table, per).is_none() {
            return None;
        }
        self.ms[k].used = true;
        self.ms[k + 1].used = true;
        Some(per)
    }

    /// "customers who never ordered", "agents with no tickets", "customers who did not order
    /// in 2025": "never"/"no" (or "not") right before a table that points at the table named
    /// before it. The conditions that belong to the missing rows are sorted out in
    /// [`Self::finish`].
    fn absences(&mut self) {
        for i in 0..self.ms.len() {
            let negation = matches!(
                self.unused(i).and_then(Mention::word),
                Some(Builtin::Never | Builtin::Not)
            );
            if !negation || self.absent_at.is_some() {
                continue;
            }
            // "never ordered on mobile": the date column "ordered on" names its table too.
            let Some(table) = self.unused(i + 1).and_then(|m| {
                m.table().or_else(|| {
                    let cols = m.columns().filter(|c| self.is_time_column(c))?;
                    let t = cols.first()?.0;
                    cols.iter().all(|c| c.0 == t).then_some(t)
                })
            }) else {
                continue;
            };
            let Some(owner) = self.ms[..i].iter().rev().find_map(Mention::table) else {
                continue;
            };
            if owner == table {
                continue;
            }
            // "products never ordered": no order line (which points at both) for them.
            let points_at = |from: usize, to: usize| self.cat.key_to(from, to).is_some();
            let missing = if points_at(table, owner) {
                Some(table)
            } else {
                (0..self.cat.tables.len())
                    .find(|&b| b != owner && points_at(b, owner) && points_at(b, table))
            };
            let Some(missing) = missing else { continue };
            self.ms[i].used = true;
            self.ms[i + 1].used = true;
            self.absent_at = Some((i, missing, owner));
        }
    }

    /// "revenue growth by month", "month over month change in orders".
    fn growths(&mut self) {
        for i in 0..self.ms.len() {
            let Some(Builtin::Growth(grain)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            self.ms[i].used = true;
            self.intent.growth = true;
            if let Some(g) = grain {
                self.add_dim(Dim::Bucket(g));
            }
        }
    }

    /// "first"/"last": "the first order from each country" is the earliest order date;
    /// "which agent was hired first" the agent with the earliest hiring date.
    fn ordinals(&mut self) -> Result<(), String> {
        for i in 0..self.ms.len() {
            let Some(Builtin::Ordinal(dir)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            let agg = if dir == Dir::Asc { Agg::Min } else { Agg::Max };
            if let Some(t) = self.unused(i + 1).and_then(Mention::table) {
                let Some(tc) = self.cat.tables[t].time_column else {
                    return Err(format!(
                        "\"{} {}\" needs a date column to tell first from last, and {} has none.",
                        self.ms[i].text,
                        self.ms[i + 1].text,
                        self.cat.tables[t].name
                    ));
                };
                self.ms[i].used = true;
                self.ms[i + 1].used = true;
                self.add_metric(Metric::Agg {
                    agg,
                    col: vec![(t, tc)],
                    explicit: true,
                });
                continue;
            }
            let dated = i
                .checked_sub(1)
                .and_then(|p| self.unused(p))
                .and_then(Mention::columns)
                .filter(|c| self.is_time_column(c));
            if let Some(col) = dated {
                self.ms[i].used = true;
                self.ms[i - 1].used = true;
                if self.rank.is_none() {
                    self.rank = Some(RankWord {
                        dir,
                        n: None,
                        top: false,
                    });
                }
                let idx = self.add_metric(Metric::Agg {
                    agg,
                    col,
                    explicit: false,
                });
                self.rank_by(idx);
            }
        }
        Ok(())
    }

    /// "share of revenue by channel", "percentage of customers …", "% of orders cancelled": the
    /// figure as a percent of its total. A `%` left after the comparisons took theirs ("a
    /// discount above 20%") is one. A table right after it is counted ("share of tickets").
    fn shares(&mut self) {
        for i in 0..self.ms.len() {
            if !matches!(
                self.unused(i).map(|m| &m.kind),
                Some(MKind::Word(Builtin::Share) | MKind::Percent)
            ) {
                continue;
            }
            self.ms[i].used = true;
            self.intent.share = true;
            // "share of tickets", "percentage of enterprise customers": the table after it
            // (past the values that qualify it) is counted.
            let mut j = i + 1;
            while self.unused(j).is_some_and(|m| !m.values().is_empty()) {
                j += 1;
            }
            if let Some(table) = self.unused(j).and_then(Mention::table) {
                self.ms[j].used = true;
                self.add_metric(Metric::Count {
                    table,
                    distinct: false,
                });
            }
        }
    }

    /// "average discount", "max unit price", "total quantity", "earliest order".
    fn aggregates(&mut self) -> Result<(), String> {
        for i in 0..self.ms.len() {
            let Some(Builtin::Agg(agg)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            let word = self.ms[i].text.clone();
            let Some(m) = self.unused(i + 1).cloned() else {
                if agg == Agg::Sum {
                    // "revenue in total", "the total": a figure is a total already.
                    self.ms[i].used = true;
                    continue;
                }
                return Err(format!(
                    "I could not tell what \"{word}\" applies to; name a numeric column, e.g. \
                     \"{word} discount\"."
                ));
            };
            let metric = if let Some(cols) = m.columns() {
                if matches!(agg, Agg::Sum | Agg::Avg) {
                    let numeric = self.numeric(&cols);
                    if numeric.is_empty() {
                        return Err(format!(
                            "\"{}\" is not a number, so I cannot take its {word}.",
                            m.text
                        ));
                    }
                    Metric::Agg {
                        agg,
                        col: numeric,
                        explicit: true,
                    }
                } else {
                    Metric::Agg {
                        agg,
                        col: cols,
                        explicit: true,
                    }
                }
            } else if let Some(mi) = m.measure() {
                // "average number of orders per customer", with "number of orders" a measure
                // that counts the orders.
                let per_entity = if agg == Agg::Avg
                    && let Some(table) = self.counted_rows(mi)
                {
                    self.per_entity(table, i + 1).map(|per| (table, per))
                } else {
                    None
                };
                if let Some((table, per)) = per_entity {
                    self.ms[i].used = true;
                    self.ms[i + 1].used = true;
                    self.add_metric(Metric::PerEntity { table, per });
                    continue;
                }
                if agg != Agg::Sum {
                    return Err(format!(
                        "\"{}\" is already a total over rows; I cannot take its {word} without \
                         knowing over what. Ask for it by a dimension (\"{} by month\") instead.",
                        m.text, m.text
                    ));
                }
                Metric::Measure(mi)
            } else if let Some(table) = m.table() {
                match agg {
                    Agg::Sum => Metric::Count {
                        table,
                        distinct: false,
                    },
                    Agg::Min | Agg::Max => match self.cat.tables[table].time_column {
                        Some(tc) => Metric::Agg {
                            agg,
                            col: vec![(table, tc)],
                            explicit: true,
                        },
                        None => {
                            return Err(format!(
                                "\"{word} {}\" needs a date column, and {} has none.",
                                m.text, self.cat.tables[table].name
                            ));
                        }
                    },
                    Agg::Avg => match self.per_entity(table, i + 1) {
                        // "average orders per customer"
                        Some(per) => Metric::PerEntity { table, per },
                        None => {
                            return Err(format!(
                                "I cannot compute an average of {} per something else (an \
                                 average of counts) unless it is per a table they point at \
                                 (\"average {} per …\"); ask for counts by a dimension instead.",
                                m.text, m.text
                            ));
                        }
                    },
                }
            } else if m.word() == Some(Builtin::Count) {
                return Err(format!(
                    "\"{word}\" of a count (an average of counts per group) is beyond the \
                     built-in planner; ask for the counts by a dimension instead."
                ));
            } else if agg == Agg::Sum {
                self.ms[i].used = true;
                continue;
            } else {
                return Err(format!(
                    "I could not tell what \"{word}\" applies to; name a numeric column."
                ));
            };
            self.ms[i].used = true;
            self.ms[i + 1].used = true;
            self.add_metric(metric);
        }
        Ok(())
    }

    /// "by country and channel", "per month", "for each customer", "by revenue" (ranking).
    fn groupings(&mut self) -> Result<(), String> {
        let mut i = 0;
        while i < self.ms.len() {
            if self.unused(i).and_then(Mention::word) != Some(Builtin::By) {
                i += 1;
                continue;
            }
            self.ms[i].used = true;
            let per = self.ms[i].text == "per";
            let mut j = i + 1;
            let mut any = false;
            loop {
                if per && let Some(t) = self.unused(j).and_then(Mention::table) {
                    self.per_entities.push(t);
                }
                let consumed = self.group_item(j)?;
                if consumed == 0 {
                    break;
                }
                any = true;
                j += consumed;
                if self.is_word(j, Builtin::And) && self.unused(j).is_some() {
                    let next = self.group_item_peek(j + 1);
                    if next {
                        self.ms[j].used = true;
                        j += 1;
                        continue;
                    }
                }
                break;
            }
            // "by Germany" reads as a filter (the value reader took it); a trailing "by"
            // has nothing to group by.
            if !any && self.ms.get(i + 1).is_none() {
                return Err(format!(
                    "The question ends with \"{}\"; group by what? {}",
                    self.ms[i].text,
                    self.vocabulary_hint()
                ));
            }
            i = j.max(i + 1);
        }
        Ok(())
    }

    fn group_item_peek(&self, j: usize) -> bool {
        self.unused(j).is_some_and(|m| {
            matches!(m.word(), Some(Builtin::Grain(_)))
                || m.table().is_some()
                || m.columns().is_some()
                || m.measure().is_some()
        })
    }

    /// Reads one grouping item at `j`; returns how many mentions it took (0: none).
    fn group_item(&mut self, j: usize) -> Result<usize, String> {
        let Some(m) = self.unused(j).cloned() else {
            return Ok(0);
        };
        if let Some(Builtin::Grain(g)) = m.word() {
            self.ms[j].used = true;
            self.add_dim(Dim::Bucket(g));
            return Ok(1);
        }
        if let Some(mi) = m.measure() {
            self.ms[j].used = true;
            let idx = self.add_metric(Metric::Measure(mi));
            self.rank_by(idx);
            return Ok(1);
        }
        if let Some(t) = m.table() {
            self.ms[j].used = true;
            self.add_dim(Dim::Entity(t));
            return Ok(1);
        }
        if let Some(cols) = m.columns() {
            self.ms[j].used = true;
            if self.is_time_column(&cols) {
                // "by order date": daily buckets of that date; "by signup year": yearly.
                self.intent.time_column = Some(cols);
                if let Some(Builtin::Grain(g)) = self.unused(j + 1).and_then(Mention::word) {
                    self.ms[j + 1].used = true;
                    self.add_dim(Dim::Bucket(g));
                    return Ok(2);
                }
                self.add_dim(Dim::Bucket(Grain::Day));
            } else if self.is_measure_column(&cols)
                && (self.rank.is_some() || self.intent.metrics.is_empty())
            {
                let agg = self.default_agg(&cols);
                let idx = self.add_metric(Metric::Agg {
                    agg,
                    col: cols,
                    explicit: false,
                });
                self.rank_by(idx);
            } else {
                self.add_dim(Dim::Column(cols));
            }
            return Ok(1);
        }
        Ok(0)
    }

    fn rank_by(&mut self, idx: usize) {
        if let Some(r) = self.intent.ranking.as_mut() {
            r.by = idx;
        } else if self.rank.is_some() {
            self.intent.ranking = Some(Ranking {
                dir: Dir::Desc,
                n: 0,
                by: idx,
            });
        }
    }

    /// The rank word's neighbours: "top 5 products" (what is ranked), "the most orders",
    /// "highest revenue", "lowest average discount" (what it is ranked by).
    fn superlatives(&mut self) -> Result<(), String> {
        for i in 0..self.ms.len() {
            let Some(Builtin::Rank(_)) = self.unused(i).and_then(Mention::word) else {
                continue;
            };
            self.ms[i].used = true;
            let mut j = i + 1;
            while self
                .ms
                .get(j)
                .is_some_and(|m| m.used && m.number().is_some())
            {
                j += 1;
            }
            // "lowest 5 products by …": with a count, the noun is what is ranked.
            let top = is_top_word(&self.ms[i].text) || j > i + 1;
            let Some(m) = self.unused(j).cloned() else {
                continue;
            };
            if let Some(mi) = m.measure() {
                self.ms[j].used = true;
                let idx = self.add_metric(Metric::Measure(mi));
                self.rank_by(idx);
            } else if let Some(t) = m.table() {
                self.ms[j].used = true;
                if top {
                    self.add_dim(Dim::Entity(t));
                    self.rank_plural(m.plural);
                } else {
                    // "the most orders": ranked by how many.
                    let idx = self.add_metric(Metric::Count {
                        table: t,
                        distinct: false,
                    });
                    self.rank_by(idx);
                }
            } else if let Some(cols) = m.columns() {
                self.ms[j].used = true;
                if !self.is_measure_column(&cols) {
                    // What is ranked ("top 5 categories"), never something to add up.
                    self.add_dim(Dim::Column(cols));
                    self.rank_plural(m.plural);
                } else {
                    let col = cols;
                    let agg = self.default_agg(&col);
                    let idx = self.add_metric(Metric::Agg {
                        agg,
                        col,
                        explicit: false,
                    });
                    self.rank_by(idx);
                }
            } else if let Some(Builtin::Grain(g)) = m.word() {
                // "top 3 months by revenue"
                self.ms[j].used = true;
                self.add_dim(Dim::Bucket(g));
                self.rank_plural(m.plural);
            }
        }
        Ok(())
    }

    /// Remembers whether the ranked noun was plural ("top products": 10, "top product": 1).
    fn rank_plural(&mut self, plural: bool) {
        if let Some(r) = self.rank.as_mut()
            && r.n.is_none()
        {
            r.n = Some(if plural { 10 } else { 1 });
        }
    }

    /// "which country …", "what categories …": a dimension if something is computed,
    /// otherwise the thing to list.
    fn whiches(&mut self) {
        for i in 0..self.ms.len() {
            if self.unused(i).and_then(Mention::word) != Some(Builtin::Which) {
                continue;
            }
            self.ms[i].used = true;
            let mut j = i + 1;
            while self
                .ms
                .get(j)
                .is_some_and(|m| m.word() == Some(Builtin::Distinct))
            {
                self.ms[j].used = true;
                j += 1;
            }
            let Some(m) = self.unused(j).cloned() else {
                continue;
            };
            if let Some(t) = m.table() {
                self.ms[j].used = true;
                self.which.push((Dim::Entity(t), m.plural));
            } else if let Some(cols) = m.columns()
                && !self.is_measure_column(&cols)
            {
                self.ms[j].used = true;
                self.which.push((Dim::Column(cols), m.plural));
            } else if let Some(Builtin::Grain(g)) = m.word() {
                self.ms[j].used = true;
                self.which.push((Dim::Bucket(g), m.plural));
            }
        }
    }

    /// "monthly revenue", "revenue over time".
    fn grains(&mut self) {
        for i in 0..self.ms.len() {
            if let Some(Builtin::Grain(g)) = self.unused(i).and_then(Mention::word) {
                self.ms[i].used = true;
                self.add_dim(Dim::Bucket(g));
            }
        }
    }

    /// Measures, columns and tables no reader claimed.
    fn leftovers(&mut self) -> Result<(), String> {
        let mut loose_columns: Vec<(Cands, bool, usize)> = Vec::new();
        for i in 0..self.ms.len() {
            if self.ms[i].used {
                continue;
            }
            let m = self.ms[i].clone();
            if let Some(mi) = m.measure() {
                self.ms[i].used = true;
                self.add_metric(Metric::Measure(mi));
            } else if let Some(t) = m.table() {
                self.ms[i].used = true;
                // "the 3 countries with the highest revenue" – a noun right before the
                // superlative is what is ranked.
                if self.intent.subject.is_none() {
                    self.intent.subject = Some(t);
                    self.subject_plural = m.plural;
                } else if self.intent.subject != Some(t) && !self.intent.tables.contains(&t) {
                    self.intent.tables.push(t);
                }
            } else if let Some(cols) = m.columns() {
                self.ms[i].used = true;
                if self.is_time_column(&cols)
                    && (self.names_extreme_date(&cols) || self.counting_verb(i, &cols))
                {
                    continue;
                }
                if self.is_time_column(&cols)
                    && (self.intent.range.is_some()
                        || self.intent.dims.iter().any(|d| matches!(d, Dim::Bucket(_))))
                    && self.intent.time_column.is_none()
                {
                    self.intent.time_column = Some(cols);
                } else {
                    loose_columns.push((cols, m.plural, i));
                }
            }
        }
        // Columns left over: more metrics or dimensions when something is computed, the
        // columns to show when rows are listed.
        let computing = self.computes();
        let mut listed = Vec::new();
        for (cols, plural, i) in loose_columns {
            if computing {
                if !self.is_measure_column(&cols) {
                    // "country revenue": a grouping.
                    self.add_dim(Dim::Column(cols));
                    self.rank_plural(plural);
                } else if self.is_word(i.wrapping_sub(1), Builtin::And)
                    || self.is_word(i + 1, Builtin::And)
                {
                    // "revenue and quantity by category": one more figure.
                    let agg = self.default_agg(&cols);
                    self.add_metric(Metric::Agg {
                        agg,
                        col: cols,
                        explicit: false,
                    });
                } else {
                    // "orders with a discount": a condition the planner cannot spell out.
                    return Err(format!(
                        "I could not tell what \"{}\" means in this question (a figure to \
                         compute, or a condition such as \"{} over 0\"?).",
                        self.ms[i].text, self.ms[i].text
                    ));
                }
            } else {
                listed.push(cols);
            }
        }
        if !listed.is_empty() {
            // A lone number column with no table named is something to add up ("quantity
            // in 2024"); with a table named, columns to show ("product names and prices").
            let only_numbers = listed.iter().all(|c| self.is_measure_column(c));
            if only_numbers
                && self.intent.subject.is_none()
                && self.rank.is_none()
                && self.which.is_empty()
            {
                for cols in listed {
                    let agg = self.default_agg(&cols);
                    self.add_metric(Metric::Agg {
                        agg,
                        col: cols,
                        explicit: false,
                    });
                }
            } else if !self.intent.dims.is_empty() || self.rank.is_some() {
                // "countries by …" with nothing computed: counted later; keep as dims.
                for cols in listed {
                    self.add_dim(Dim::Column(cols));
                }
            } else {
                // Categories listed without naming a table are wanted once each ("list
                // brands in Clothing"); names and emails are rows.
                let categorical = self.intent.subject.is_none()
                    && listed.iter().flatten().all(|c| {
                        self.cat.column(*c).role == bqai_core::semantic::ColumnRole::Dimension
                    });
                self.intent.listing = Some(Listing {
                    columns: listed,
                    distinct: categorical,
                });
            }
        }
        Ok(())
    }

    /// Checks that everything was explained and fills in the implied parts.
    fn finish(&mut self) -> Result<(), String> {
        for m in &self.ms {
            if m.used {
                continue;
            }
            match &m.kind {
                MKind::Number(n) => {
                    return Err(format!(
                        "I could not tell what the number {} refers to. {}",
                        fmt_number(*n),
                        self.vocabulary_hint()
                    ));
                }
                MKind::Word(Builtin::Cmp(_) | Builtin::Not | Builtin::Count) => {
                    return Err(format!(
                        "I could not tell what \"{}\" applies to in this question.",
                        m.text
                    ));
                }
                MKind::Word(Builtin::Agg(a)) if *a != Agg::Sum => {
                    return Err(format!(
                        "I could not tell what \"{}\" applies to in this question.",
                        m.text
                    ));
                }
                MKind::Schema(_) => {
                    return Err(format!(
                        "I could not place \"{}\" in this question.",
                        m.text
                    ));
                }
                // "total cost": a cost the dataset has no column for.
                MKind::Word(Builtin::Costs) => {
                    return Err(format!(
                        "I could not tell which column \"{}\" refers to; name it, e.g. \"unit \
                         price over 100\".",
                        m.text
                    ));
                }
                MKind::Word(Builtin::Never) => {
                    return Err(format!(
                        "I read \"{}\" only as rows of one table that another has no rows for \
                         (\"customers who never ordered\", \"agents with no tickets\"), and \
                         could not find those two tables here.",
                        m.text
                    ));
                }
                MKind::Word(Builtin::Ordinal(_)) => {
                    return Err(format!(
                        "I could not tell what \"{}\" applies to; I read it before a table \
                         (\"the first order\": its earliest date) or after a date column \
                         (\"which agent was hired first\").",
                        m.text
                    ));
                }
                _ => {}
            }
        }
        self.sort_absence();
        if self.intent.versus.is_some() && self.intent.range.is_some() {
            return Err(
                "I can compare two periods (\"2024 vs 2023\") or restrict to one, not \
                 both in one question."
                    .to_owned(),
            );
        }
        if self.intent.versus.is_some() {
            // The change between the two periods is the growth asked for.
            self.intent.growth = false;
        }

        // "which country …" is a dimension when something is computed, else what is listed.
        let which = std::mem::take(&mut self.which);
        self.superlative_per_group(which.is_empty())?;
        let computing = self.computes();
        for (d, plural) in which {
            if computing || self.rank.is_some() {
                self.add_dim(d);
                self.rank_plural(plural);
            } else {
                match d {
                    Dim::Entity(t) => {
                        if self.intent.subject.is_none() {
                            self.intent.subject = Some(t);
                        }
                    }
                    Dim::Column(c) => {
                        self.intent
                            .listing
                            .get_or_insert_with(Listing::default)
                            .columns
                            .push(c);
                        if let Some(l) = self.intent.listing.as_mut() {
                            l.distinct = true;
                        }
                    }
                    Dim::Bucket(g) => self.add_dim(Dim::Bucket(g)),
                }
            }
        }

        self.per_row_comparisons();
        // Comparisons on metrics (HAVING) need their metric computed.
        let having = self.compared_metrics();
        for m in having {
            // A count of the subject table compared ("customers with more than 20 orders"):
            // the subject becomes what is grouped.
            self.add_metric(m);
        }

        if self.intent.metrics.is_empty() {
            let grouped = !self.intent.dims.is_empty();
            if grouped {
                // "orders by month", "customers by country": count the rows.
                let table = self
                    .intent
                    .subject
                    .or_else(|| {
                        self.intent.dims.iter().find_map(|d| match d {
                            Dim::Column(c) => c.first().map(|c| c.0),
                            Dim::Entity(t) => Some(*t),
                            Dim::Bucket(_) => None,
                        })
                    })
                    .or_else(|| {
                        self.intent
                            .time_column
                            .as_ref()
                            .and_then(|c| c.first().map(|c| c.0))
                    });
                let Some(table) = table else {
                    return Err(format!(
                        "I could not tell what to count or add up per group. {}",
                        self.vocabulary_hint()
                    ));
                };
                if self.intent.subject == Some(table) {
                    self.intent.subject = None;
                }
                // "top 5 customers" with nothing to rank by is not a count of customers.
                if self.rank.is_some() && self.intent.dims == [Dim::Entity(table)] {
                    return Err(format!(
                        "I understood you want a ranking of {} but not by what; add a \
                         measure, e.g. \"by {}\".",
                        self.cat.tables[table].words(),
                        self.cat.measures.first().map_or_else(
                            || "a number column".to_owned(),
                            |m| m.name.replace('_', " ")
                        )
                    ));
                }
                self.add_metric(Metric::Count {
                    table,
                    distinct: false,
                });
            } else if self.intent.subject.is_some() || self.intent.listing.is_some() {
                let listing = self.intent.listing.get_or_insert_with(Listing::default);
                if listing.columns.is_empty() && self.intent.subject.is_none() {
                    return Err("I could not tell which rows to list.".to_owned());
                }
                if let Some(r) = self.rank {
                    return self.ranking_without_measure(r);
                }
                return Ok(());
            } else {
                return Err(format!(
                    "I could not find anything to compute or list in the question. {}",
                    self.vocabulary_hint()
                ));
            }
        }

        // A measure compared per group with nothing grouped: group by the subject
        // ("customers with revenue over 10000", "customers with more than 20 orders").
        let has_having = self.intent.filters.iter().any(|f| {
            matches!(
                f,
                Filter::Compare {
                    target: CmpTarget::Metric(_),
                    ..
                }
            )
        });
        if (has_having || self.rank.is_some()) && self.intent.dims.is_empty() {
            match self.intent.subject.take() {
                Some(t) => {
                    self.add_dim(Dim::Entity(t));
                    // "the most expensive product" is one; "products with the most orders"
                    // ten.
                    self.rank_plural(self.subject_plural);
                }
                None if has_having => {
                    // "how many customers have more than 20 orders": the customers are
                    // grouped, compared, and counted.
                    let compared = self.compared_metrics();
                    let counted = match self.intent.metrics.first() {
                        Some(m) if compared.contains(m) || self.rank.is_some() => None,
                        Some(Metric::CountDistinct(c)) => Some(Dim::Column(c.clone())),
                        Some(Metric::Count { table, .. }) => Some(Dim::Entity(*table)),
                        _ => None,
                    };
                    let Some(dim) = counted else {
                        return Err("I could not tell what to compare per group; name it, e.g. \
                             \"customers with revenue over 1000\"."
                            .to_owned());
                    };
                    self.intent.metrics.remove(0);
                    self.add_dim(dim);
                    self.intent.count_groups = true;
                }
                None => {
                    // "highest unit price": the maximum, not a ranking.
                    if let Some(r) = self.rank.take()
                        && let Some(Metric::Agg { agg, explicit, .. }) =
                            self.intent.metrics.last_mut()
                        && !*explicit
                    {
                        *agg = if r.dir == Dir::Desc {
                            Agg::Max
                        } else {
                            Agg::Min
                        };
                        *explicit = true;
                        self.intent.ranking = None;
                    } else {
                        return Err(
                            "I understood a ranking but not of what; say what to rank, e.g. \
                             \"top 5 products by revenue\"."
                                .to_owned(),
                        );
                    }
                }
            }
        }
        // "average replies per ticket by team", "average quantity per order line": an
        // average of a column of the rows named is over those rows, not one group per row.
        for &per in &self.per_entities {
            let row_average = !self.intent.metrics.is_empty()
                && self.intent.metrics.iter().all(|m| {
                    matches!(m, Metric::Agg { agg: Agg::Avg, col, .. } if col.iter().all(|c| c.0 == per))
                });
            if row_average {
                self.intent.dims.retain(|d| *d != Dim::Entity(per));
                if !self.intent.tables.contains(&per) {
                    self.intent.tables.push(per);
                }
            }
        }
        // "orders per customer by country" asks for an average of counts per customer in
        // each country, not a row per customer and country: the orders per customer who has
        // any, when orders point at customers.
        if let Some(&per) = self.per_entities.first()
            && self.intent.dims.len() > 1
            && self.intent.metrics.iter().all(|m| {
                matches!(m, Metric::Count { table, .. }
                    if *table != per && self.cat.key_to(*table, per).is_some())
            })
        {
            self.intent.dims.retain(|d| *d != Dim::Entity(per));
            for m in &mut self.intent.metrics {
                if let Metric::Count { table, .. } = *m {
                    *m = Metric::PerEntity { table, per };
                }
            }
        }
        if let Some(&per) = self.per_entities.first()
            && self.intent.dims.len() > 1
            && self
                .intent
                .metrics
                .iter()
                .all(|m| matches!(m, Metric::Count { table, .. } if *table != per))
        {
            let entity = self.cat.tables[per].words();
            return Err(format!(
                "I understood a count per {entity} within other groups, which is an average of \
                 counts per {entity}; that is beyond the built-in planner. Ask for the counts by \
                 {entity} or by the other groups instead."
            ));
        }
        let buckets = self
            .intent
            .dims
            .iter()
            .filter(|d| matches!(d, Dim::Bucket(_)))
            .count();
        if self.intent.growth && buckets == 0 {
            return Err(
                "I understood a growth or change, but not between which periods: ask for it by \
                 a time bucket (\"revenue growth by month in 2024\", \"month over month \
                 orders\") or between two periods (\"revenue 2025 vs 2024\")."
                    .to_owned(),
            );
        }
        if buckets > 1 {
            return Err(
                "I can group by one time bucket at a time (day, week, month, quarter or year); \
                 \"day of week\" or \"month of year\" groupings are beyond the built-in planner."
                    .to_owned(),
            );
        }
        // A bare number column about a named table: add it up, or list the table by it?
        if self.intent.dims.is_empty()
            && self.intent.ranking.is_none()
            && self.rank.is_none()
            && let Some(t) = self.intent.subject
            && let [
                Metric::Agg {
                    col,
                    explicit: false,
                    ..
                },
            ] = self.intent.metrics.as_slice()
            && col.iter().any(|c| c.0 == t)
        {
            let what = self.cat.column(col[0]).words();
            return Err(format!(
                "I could not tell whether to add up {what} or to list {} by it; ask for \
                 \"total {what}\", \"average {what}\" or \"top 10 {} by {what}\".",
                self.cat.tables[t].words(),
                self.cat.tables[t].words()
            ));
        }
        // Tables mentioned but not otherwise used are joined ("customers who ordered").
        if let Some(t) = self.intent.subject.take()
            && !self.intent.tables.contains(&t)
        {
            self.intent.tables.insert(0, t);
        }
        if let Some(r) = self.rank {
            let by = self.intent.ranking.map_or(0, |x| x.by);
            self.intent.ranking = Some(Ranking {
                dir: r.dir,
                n: r.n.unwrap_or(10),
                by,
            });
        } else {
            self.intent.ranking = None;
        }
        Ok(())
    }

    /// The figures compared per group (HAVING).
    fn compared_metrics(&self) -> Vec<Metric> {
        self.intent
            .filters
            .iter()
            .filter_map(|f| match f {
                Filter::Compare {
                    target: CmpTarget::Metric(m),
                    ..
                } => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    /// "the date of the first order", "the last ticket opened": a date column of the table
    /// whose earliest or latest date is computed names which date that is.
    fn names_extreme_date(&mut self, cols: &Cands) -> bool {
        for m in &mut self.intent.metrics {
            if let Metric::Agg {
                agg: Agg::Min | Agg::Max,
                col,
                explicit: true,
            } = m
                && let [c] = col.as_slice()
                && self.cat.column(*c).is_temporal()
            {
                let same: Cands = cols.iter().copied().filter(|x| x.0 == c.0).collect();
                if !same.is_empty() {
                    *col = same;
                    return true;
                }
            }
        }
        false
    }

    /// "order lines that sold at least 5 units": a measure that adds up one column of the
    /// rows counted or listed, compared with nothing grouped, is that column on each row.
    fn per_row_comparisons(&mut self) {
        if !self.intent.dims.is_empty() || !self.which.is_empty() {
            return;
        }
        let rows = match self.intent.metrics.as_slice() {
            [] => self.intent.subject,
            [Metric::Count { table, .. }] if self.intent.subject.is_none_or(|s| s == *table) => {
                Some(*table)
            }
            _ => None,
        };
        let Some(rows) = rows else { return };
        for f in &mut self.intent.filters {
            let Filter::Compare {
                target: target @ CmpTarget::Metric(Metric::Measure(_)),
                ..
            } = f
            else {
                continue;
            };
            let CmpTarget::Metric(Metric::Measure(mi)) = target else {
                continue;
            };
            let measure = &self.cat.measures[*mi];
            let column = measure
                .sql
                .trim()
                .strip_prefix("SUM(")
                .and_then(|r| r.strip_suffix(')'))
                .and_then(|c| c.trim().split_once('.'))
                .and_then(|(t, c)| self.cat.column_id(t, c));
            if let Some(col) = column
                && col.0 == rows
                && measure.table == rows
            {
                *target = CmpTarget::Column(vec![col]);
            }
        }
    }

    /// "customers who opened more than 5 tickets": a date column said as a verb right before
    /// a comparison of how many rows of its table there are says nothing more.
    fn counting_verb(&self, i: usize, cols: &Cands) -> bool {
        let before_cmp = matches!(
            self.ms.get(i + 1).and_then(Mention::word),
            Some(Builtin::Cmp(_))
        );
        before_cmp
            && self.intent.filters.iter().any(|f| {
                matches!(f, Filter::Compare {
                    target: CmpTarget::Metric(Metric::Count { table, .. }),
                    ..
                } if cols.iter().any(|c| c.0 == *table))
            })
    }

    /// Moves the conditions of the missing rows into the [`Absent`]: every condition not on
    /// the table whose rows have none ("customers in Germany who never ordered on mobile":
    /// the country stays, the channel goes), and the dates unless they name that table's own
    /// date column.
    fn sort_absence(&mut self) {
        let Some((_, table, owner)) = self.absent_at else {
            return;
        };
        let on_owner = |c: &ColId| c.0 == owner;
        let (inside, outside): (Vec<Filter>, Vec<Filter>) =
            std::mem::take(&mut self.intent.filters)
                .into_iter()
                .partition(|f| match f {
                    Filter::Values { options, .. } => !options.iter().any(|(c, _)| on_owner(c)),
                    Filter::Compare {
                        target: CmpTarget::Column(c),
                        ..
                    } => !c.iter().any(on_owner),
                    Filter::Compare { .. } => false,
                });
        self.intent.filters = outside;
        let dates_on_owner = self
            .intent
            .time_column
            .as_ref()
            .is_some_and(|c| c.iter().any(on_owner));
        let (range, time_column) = if dates_on_owner {
            (None, None)
        } else {
            (self.intent.range.take(), self.intent.time_column.take())
        };
        self.intent.absent = Some(Absent {
            table,
            owner,
            filters: inside,
            range,
            time_column,
        });
    }

    /// The price column a comparison at `i` means when it names none: said with "cost(s)"
    /// before it or "$" after it, of the nearest table named before it, which must have
    /// exactly one numeric column called a price or a cost.
    fn implied_price(&self, i: usize) -> Option<ColId> {
        let costs = i
            .checked_sub(1)
            .is_some_and(|p| self.ms[p].word() == Some(Builtin::Costs));
        let dollars = matches!(self.ms.get(i + 1).map(|m| &m.kind), Some(MKind::Currency));
        if !costs && !dollars {
            return None;
        }
        let table = self.ms[..i].iter().rev().find_map(Mention::table)?;
        let priced: Vec<ColId> = self.cat.tables[table]
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                let name = c.name.to_lowercase();
                name.contains("price") || name.contains("cost")
            })
            .map(|(ci, _)| (table, ci))
            .collect();
        match self.numeric(&priced).as_slice() {
            [col] => Some(*col),
            _ => None,
        }
    }

    /// "highest unit price by category": the maximum of a plain column per group, not a
    /// ranking of the groups by its average. Only for a superlative ("highest", "cheapest",
    /// not "top") with no count, no "which" (then the groups are ranked: "which brand has
    /// the highest price") and no named measure ("highest revenue by country" ranks).
    /// "the cheapest product in each category" asks for a row per group, which the planner
    /// does not write: refused rather than answered with a ranking of the categories.
    fn superlative_per_group(&mut self, no_which: bool) -> Result<(), String> {
        let Some(r) = self.rank else {
            return Ok(());
        };
        if r.top || r.n.is_some() || !no_which || self.intent.dims.is_empty() {
            return Ok(());
        }
        let [
            Metric::Agg {
                agg, explicit, col, ..
            },
        ] = self.intent.metrics.as_mut_slice()
        else {
            return Ok(());
        };
        if *explicit {
            return Ok(());
        }
        // "the cheapest product in each category": the product, one per category.
        if let Some(t) = self.intent.subject
            && !col.iter().any(|c| c.0 != t)
            && !self.subject_plural
        {
            self.intent.per_group = true;
            if let Some(r) = self.rank.as_mut() {
                r.n = Some(1);
            }
            return Ok(());
        }
        if let Some(t) = self.intent.subject
            && !col.iter().any(|c| c.0 != t)
        {
            return Err(format!(
                "I understood you want the {} {} in each group; I list one per group (\"the \
                 {} {} in each …\"). Ask for that, for the {} {} per group (\"highest {} by \
                 …\") or for a ranking (\"top 10 {} by {}\").",
                if r.dir == Dir::Desc {
                    "highest"
                } else {
                    "lowest"
                },
                self.cat.tables[t].words(),
                if r.dir == Dir::Desc {
                    "highest"
                } else {
                    "lowest"
                },
                self.cat.tables[t].noun(),
                if r.dir == Dir::Desc {
                    "highest"
                } else {
                    "lowest"
                },
                self.cat.column(col[0]).words(),
                self.cat.column(col[0]).words(),
                self.cat.tables[t].words(),
                self.cat.column(col[0]).words(),
            ));
        }
        *agg = if r.dir == Dir::Desc {
            Agg::Max
        } else {
            Agg::Min
        };
        *explicit = true;
        self.rank = None;
        self.intent.ranking = None;
        Ok(())
    }

    /// "top 5 products" with nothing to rank them by.
    fn ranking_without_measure(&mut self, r: RankWord) -> Result<(), String> {
        Err(format!(
            "I understood a ranking ({}) of {} but not by what; add a measure, e.g. \"by {}\".",
            if r.dir == Dir::Desc {
                "highest first"
            } else {
                "lowest first"
            },
            self.intent
                .subject
                .map_or_else(|| "rows".to_owned(), |t| self.cat.tables[t].words()),
            self.cat.measures.first().map_or_else(
                || "a number column".to_owned(),
                |m| m.name.replace('_', " ")
            )
        ))
    }
}

/// A number as written in SQL and messages: no trailing `.0`.
pub(crate) fn fmt_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}
