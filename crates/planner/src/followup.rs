//! Follow-ups: a question read as an edit of the previous turn's plan.
//!
//! | asked                                        | edit                                   |
//! |----------------------------------------------|----------------------------------------|
//! | "now by month", "by week", "monthly"         | the time bucket (see below)            |
//! | "only web orders", "just for enterprise customers", "not cancelled" | a value filter (replacing one on the same column) |
//! | "what about 2023?", "and for last year"      | the date range ("last year": the year before the range in play) |
//! | "top 3 instead", "bottom 5"                  | N (and direction) of the ranking       |
//! | "and by channel", "split by segment"         | one more dimension                     |
//! | "now by channel", "by channel instead"       | the dimensions replaced                |
//! | "show revenue instead"                       | the measure                            |
//!
//! A time bucket replaces the bucket in play; with none in play it replaces the dimensions
//! ("revenue by country" → "now by month" is revenue by month: one line, not one per
//! country) unless the question adds ("and by month", "also by month"). A ranking is dropped
//! when the dimensions it ranked are.
//!
//! Anything else — a word that is not an edit, a comparison, a new aggregate, no edit at all
//! — is not a follow-up: the question is read fresh.

use crate::dates;
use crate::lexicon::{Builtin, Dir, Token, refusal, relative_refusal, tokenize};
use crate::schema::{Catalog, Target};
use crate::understand::{Dim, Filter, Intent, MKind, Metric, Ranking, mentions};

/// Words that mark a question as a follow-up and mean nothing else.
const CUES: &[&str] = &["instead", "rather", "about", "too", "again", "else"];

/// `question` read as an edit of `prev`; `None` when it is not (entirely) a follow-up.
pub(crate) fn edit(question: &str, prev: &Intent, cat: &Catalog) -> Option<Intent> {
    let tokens = tokenize(question);
    let words: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
    let has = |w: &str| words.contains(&w);
    let replace = has("now") || has("instead") || has("rather");
    let adds = has("and") || has("also") || has("too") || has("split") || has("plus");
    let mut used = vec![false; tokens.len()];
    for (i, t) in tokens.iter().enumerate() {
        if CUES.contains(&t.text.as_str()) {
            used[i] = true;
        }
    }
    let mut out = prev.clone();
    let mut edited = false;

    // "last year", "the previous year", "the year before": the year before the range in play.
    if let Some(i) = relative_year(&tokens, &used) {
        let range = prev.range.as_ref()?;
        let shift = |d: Option<chrono::NaiveDate>| {
            d.map(|d| d.checked_sub_months(chrono::Months::new(12)))
                .unwrap_or(None)
        };
        let mut r = range.clone();
        r.start = shift(range.start);
        r.end = shift(range.end);
        if r.start.is_none() && r.end.is_none() {
            return None;
        }
        out.range = Some(r);
        edited = true;
        for u in used.iter_mut().skip(i.0).take(i.1 - i.0) {
            *u = true;
        }
    }
    let rest: Vec<Token> = tokens
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(t, _)| t.clone())
        .collect();
    // A follow-up's dates are absolute or relative to the previous question's ("last
    // year" above); one relative to today is asked afresh.
    if refusal(&rest, &|s| cat.knows_word(s)).is_some() || relative_refusal(&rest, &[]).is_some() {
        return None;
    }
    if let Some(range) = dates::extract(&tokens, &mut used, None).ok()? {
        out.range = Some(range);
        edited = true;
    }
    let (ms, unknown) = mentions(&tokens, &used, cat);
    if !unknown.is_empty() {
        return None;
    }

    let mut new_dims: Vec<Dim> = Vec::new();
    let mut new_metric: Option<Metric> = None;
    let mut rank_dir: Option<Dir> = None;
    let mut rank_n: Option<u64> = None;
    let mut value_filters: Vec<Filter> = Vec::new();
    let mut nouns = Vec::new();
    let mut i = 0;
    while i < ms.len() {
        let m = &ms[i];
        let after_by = i > 0 && ms[i - 1].word() == Some(Builtin::By);
        match &m.kind {
            MKind::Word(Builtin::By | Builtin::And | Builtin::Which) => {}
            MKind::Word(Builtin::Grain(g)) => new_dims.push(Dim::Bucket(*g)),
            MKind::Word(Builtin::Rank(d)) => rank_dir = Some(*d),
            MKind::Number(n) if rank_dir.is_some() && *n >= 1.0 && n.fract() == 0.0 => {
                // A whole number of at least one, checked above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let n = *n as u64;
                rank_n = Some(n);
            }
            MKind::Word(Builtin::Not) => {
                let next = ms.get(i + 1)?;
                value_filters.push(values_filter(next, cat, true)?);
                i += 2;
                continue;
            }
            MKind::Schema(targets) => {
                if !m.values().is_empty() {
                    // "web or mobile": several values of one column.
                    let mut f = values_filter(m, cat, false)?;
                    while ms.get(i + 1).and_then(|x| x.word()) == Some(Builtin::Or)
                        && let Some(next) = ms.get(i + 2)
                        && let Some(Filter::Values { options: more, .. }) =
                            values_filter(next, cat, false)
                    {
                        if let Filter::Values { options, .. } = &mut f {
                            for (c, vs) in options.iter_mut() {
                                if let Some((_, extra)) = more.iter().find(|(mc, _)| mc == c) {
                                    vs.extend(extra.iter().cloned());
                                }
                            }
                        }
                        i += 2;
                    }
                    value_filters.push(f);
                } else if after_by {
                    match targets.first()? {
                        Target::Column(_) => new_dims.push(Dim::Column(m.columns()?)),
                        Target::Table(t) => new_dims.push(Dim::Entity(*t)),
                        _ => return None,
                    }
                } else {
                    nouns.push(m.clone());
                }
            }
            _ => return None,
        }
        i += 1;
    }
    // Nouns: a new measure ("show revenue instead"), or words qualifying a filter ("web
    // orders", "enterprise customers") — only tables and measures already in play then.
    for n in nouns {
        let metric = match n.targets().first()? {
            Target::Measure(x) => Metric::Measure(*x),
            Target::Column(_) => {
                let col = n.columns()?;
                let info = cat.column(col[0]);
                if !info.is_numeric() {
                    return None;
                }
                Metric::Agg {
                    agg: if info.averages_naturally() {
                        crate::lexicon::Agg::Avg
                    } else {
                        crate::lexicon::Agg::Sum
                    },
                    col,
                    explicit: false,
                }
            }
            Target::Table(t) => Metric::Count {
                table: *t,
                distinct: false,
            },
            Target::Value(..) => return None,
        };
        let qualifies_filter = !value_filters.is_empty();
        if qualifies_filter || (!replace && prev.metrics.contains(&metric)) {
            continue;
        }
        if new_metric.is_some() || prev.metrics.is_empty() {
            return None;
        }
        new_metric = Some(metric);
    }

    if !value_filters.is_empty() {
        for f in value_filters {
            if let Filter::Values { options, .. } = &f {
                out.filters.retain(|old| match old {
                    Filter::Values { options: o, .. } => {
                        !o.iter().any(|(c, _)| options.iter().any(|(n, _)| n == c))
                    }
                    Filter::Compare { .. } => true,
                });
            }
            out.filters.push(f);
        }
        edited = true;
    }
    if let Some(m) = new_metric {
        out.metrics = vec![m];
        if let Some(r) = &mut out.ranking {
            r.by = 0;
        }
        edited = true;
    }
    if !new_dims.is_empty() {
        if prev.listing.is_some() || prev.metrics.is_empty() {
            return None;
        }
        let bucket_only = new_dims.iter().all(|d| matches!(d, Dim::Bucket(_)));
        let had_bucket = out.dims.iter().any(|d| matches!(d, Dim::Bucket(_)));
        if replace || (bucket_only && !adds && !had_bucket) {
            out.dims = new_dims;
            out.ranking = None;
        } else {
            for d in new_dims {
                if matches!(d, Dim::Bucket(_)) {
                    out.dims.retain(|x| !matches!(x, Dim::Bucket(_)));
                }
                if !out.dims.contains(&d) {
                    out.dims.push(d);
                }
            }
        }
        edited = true;
    }
    match (rank_dir, rank_n) {
        (None, None) => {}
        (Some(dir), n) => {
            if out.metrics.is_empty() || out.dims.is_empty() {
                return None;
            }
            let n = n.or(out.ranking.map(|r| r.n))?;
            out.ranking = Some(Ranking {
                dir,
                n,
                by: out.ranking.map_or(0, |r| r.by),
            });
            edited = true;
        }
        (None, Some(_)) => return None,
    }
    edited.then_some(out)
}

/// A filter on the values `m` names.
fn values_filter(m: &crate::understand::Mention, cat: &Catalog, negated: bool) -> Option<Filter> {
    let values = m.values();
    if values.is_empty() {
        return None;
    }
    let mut options: Vec<(crate::schema::ColId, Vec<String>)> = Vec::new();
    for (c, v) in values {
        let value = cat.column(c).values.get(v)?.clone();
        match options.iter_mut().find(|(oc, _)| *oc == c) {
            Some((_, vs)) if !vs.contains(&value) => vs.push(value),
            Some(_) => {}
            None => options.push((c, vec![value])),
        }
    }
    Some(Filter::Values { options, negated })
}

/// Where "last year", "the previous year", "prior year" or "the year before" is: the token
/// span `[start, end)`.
fn relative_year(tokens: &[Token], used: &[bool]) -> Option<(usize, usize)> {
    for (i, _) in used.iter().enumerate().filter(|(_, u)| !**u) {
        let at = |k: usize| tokens.get(k).map(|t| t.text.as_str());
        if matches!(at(i), Some("last" | "previous" | "prior")) && at(i + 1) == Some("year") {
            return Some((i, i + 2));
        }
        if at(i) == Some("year") && at(i + 1) == Some("before") {
            return Some((i, i + 2));
        }
    }
    None
}

/// Whether a question reads as a follow-up on its face ("now …", "only …", "… instead",
/// "what about …", "and by …"): such a question is tried as an edit first, any other one is
/// tried fresh first.
pub(crate) fn looks_like_followup(question: &str) -> bool {
    let tokens = tokenize(question);
    let first = tokens.first().map(|t| t.text.as_str());
    let starts = matches!(
        first,
        Some(
            "and"
                | "now"
                | "only"
                | "just"
                | "what"
                | "how"
                | "also"
                | "but"
                | "same"
                | "split"
                | "then"
                | "plus"
                | "by"
                | "top"
                | "bottom"
                | "show"
                | "not"
                | "excluding"
        )
    );
    let rel = tokens.iter().enumerate().any(|(i, _)| {
        relative_year(&tokens, &vec![false; tokens.len()]).is_some_and(|(s, _)| s == i)
    });
    starts
        || rel
        || tokens
            .iter()
            .any(|t| matches!(t.text.as_str(), "instead" | "rather" | "too"))
}
