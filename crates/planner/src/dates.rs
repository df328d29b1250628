//! Date expressions in questions: "in 2024", "in March 2024", "Q1 2024", "since 2025-06-01",
//! "before 2024", "between 2024-03-01 and 2024-05-31", "from 2023 to 2024", "in December".
//!
//! Everything becomes one half-open range `[start, end)` (plus, for a month named without a
//! year, a month-of-year filter), so "between A and B" includes all of day B and "until 2024"
//! all of 2024.
//!
//! Dates relative to today ("last month", "this year", "the past 30 days", "yesterday", "Q3
//! last year") are read against the day the question is asked
//! ([`bqai_core::ask::GenerationContext::today`], `ask.today` in config for tests and demos):
//! the same question on the same day gives the same SQL, with the dates written out. Periods
//! "this …" run to today, never past it; "last month" is the previous calendar month, "the
//! past month" the month up to today. Relative words it cannot place ("recently", "next
//! month") are refused by [`crate::lexicon::relative_refusal`].

use chrono::{Datelike, Months, NaiveDate};

use crate::lexicon::{Grain, TokKind, Token};

/// A range of dates the question restricts rows to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DateRange {
    /// First day included.
    pub(crate) start: Option<NaiveDate>,
    /// First day excluded.
    pub(crate) end: Option<NaiveDate>,
    /// A calendar month in every year (`in December`), 1–12.
    pub(crate) month_of_year: Option<u32>,
}

impl DateRange {
    /// Words for the explanation: "in 2024", "from 2024-03-01 to 2024-05-31", "since …".
    pub(crate) fn describe(&self) -> String {
        let mut parts = Vec::new();
        match (self.start, self.end) {
            (Some(s), Some(e)) => parts.push(describe_closed(s, e)),
            (Some(s), None) => parts.push(format!("on or after {s}")),
            (None, Some(e)) => parts.push(format!("before {e}")),
            (None, None) => {}
        }
        if let Some(m) = self.month_of_year {
            parts.push(format!("in {} of any year", month_name(m)));
        }
        parts.join(" and ")
    }

    /// The smallest range holding both (for reading two compared periods at once).
    pub(crate) fn hull(&self, other: &DateRange) -> DateRange {
        DateRange {
            start: self
                .start
                .and(other.start)
                .and(min_opt(self.start, other.start)),
            end: self.end.and(other.end).and(max_opt(self.end, other.end)),
            month_of_year: self
                .month_of_year
                .filter(|m| other.month_of_year == Some(*m)),
        }
    }

    fn intersect(&mut self, other: &DateRange) -> Result<(), String> {
        self.start = max_opt(self.start, other.start);
        self.end = min_opt(self.end, other.end);
        if let (Some(a), Some(b)) = (self.month_of_year, other.month_of_year)
            && a != b
        {
            return Err(format!(
                "the question names two different months ({} and {})",
                month_name(a),
                month_name(b)
            ));
        }
        self.month_of_year = self.month_of_year.or(other.month_of_year);
        if let (Some(s), Some(e)) = (self.start, self.end)
            && s >= e
        {
            return Err("the dates in the question leave no days in between".to_owned());
        }
        Ok(())
    }
}

fn max_opt(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn min_opt(a: Option<NaiveDate>, b: Option<NaiveDate>) -> Option<NaiveDate> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

fn describe_closed(s: NaiveDate, e: NaiveDate) -> String {
    let last = e.pred_opt().unwrap_or(e);
    let whole_months = s.day() == 1 && e.day() == 1;
    let months = (e.year() - s.year()) * 12 + e.month() as i32 - s.month() as i32;
    if whole_months && s.month() == 1 && months == 12 {
        format!("in {}", s.year())
    } else if whole_months && months == 1 {
        format!("in {} {}", month_name(s.month()), s.year())
    } else if whole_months && months == 3 && (s.month() - 1).is_multiple_of(3) {
        format!("in Q{} {}", (s.month() - 1) / 3 + 1, s.year())
    } else if last == s {
        format!("on {s}")
    } else {
        format!("from {s} to {last}")
    }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn month_name(m: u32) -> String {
    let name = MONTHS[((m.clamp(1, 12)) - 1) as usize];
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn month_of(word: &str) -> Option<u32> {
    let abbreviations = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    MONTHS
        .iter()
        .position(|m| *m == word)
        .or_else(|| abbreviations.iter().position(|m| *m == word))
        .or_else(|| (word == "sept").then_some(8))
        .and_then(|i| u32::try_from(i + 1).ok())
}

/// A period named in the question: `[start, end)`, or a month without a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Period {
    Span(NaiveDate, NaiveDate),
    MonthOfYear(u32),
}

fn ymd(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

fn months_from(y: i32, m: u32, n: u32) -> Option<Period> {
    let start = ymd(y, m, 1)?;
    Some(Period::Span(
        start,
        start.checked_add_months(Months::new(n))?,
    ))
}

fn quarter_of(word: &str) -> Option<u32> {
    match word {
        "q1" | "first" | "1st" => Some(1),
        "q2" | "second" | "2nd" => Some(2),
        "q3" | "third" | "3rd" => Some(3),
        "q4" | "fourth" | "4th" => Some(4),
        _ => None,
    }
}

/// Reads the tokens that follow filler words like "the" at `i`.
fn skip_the(tokens: &[Token], mut i: usize) -> usize {
    while tokens
        .get(i)
        .is_some_and(|t| t.text == "the" || t.text == "of")
    {
        i += 1;
    }
    i
}

/// The period starting at token `i`, and the index after it.
fn period_at(tokens: &[Token], i: usize, allow_bare_month: bool) -> Option<(Period, usize)> {
    let t = tokens.get(i)?;
    match &t.kind {
        TokKind::Date(d) => {
            return Some((Period::Span(*d, d.succ_opt()?), i + 1));
        }
        TokKind::YearMonth(y, m) => return Some((months_from(*y, *m, 1)?, i + 1)),
        _ => {}
    }
    if let Some(year) = t.year() {
        // "2024 q1"
        if let Some(q) = tokens.get(i + 1).and_then(|n| quarter_of(&n.text))
            && tokens.get(i + 1).is_some_and(|n| n.text.starts_with('q'))
        {
            return Some((months_from(year, (q - 1) * 3 + 1, 3)?, i + 2));
        }
        return Some((Period::Span(ymd(year, 1, 1)?, ymd(year + 1, 1, 1)?), i + 1));
    }
    if !t.is_word() {
        return None;
    }
    // "q1 2024", "q1 of 2024", "first quarter of 2024", "the 2nd quarter 2024".
    if let Some(q) = quarter_of(&t.text) {
        let mut j = i + 1;
        if !t.text.starts_with('q') {
            if tokens.get(j).is_none_or(|n| n.stem != "quarter") {
                return None;
            }
            j += 1;
        }
        let j = skip_the(tokens, j);
        let year = tokens.get(j)?.year()?;
        return Some((months_from(year, (q - 1) * 3 + 1, 3)?, j + 1));
    }
    // "march 2024", "march 5 2024", "march 5, 2024", "march of 2024", "march".
    if let Some(m) = month_of(&t.text) {
        let mut j = i + 1;
        let mut day = None;
        if let Some(n) = tokens.get(j)
            && n.year().is_none()
            && let Some(d) = n.number()
            && d.fract() == 0.0
            && (1.0..=31.0).contains(&d)
        {
            // A day number of a calendar month: small whole number just checked.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            {
                day = Some(d as u32);
            }
            j += 1;
            if tokens.get(j).is_some_and(|n| n.text == ",") {
                j += 1;
            }
        }
        let k = skip_the(tokens, j);
        if let Some(year) = tokens.get(k).and_then(Token::year) {
            return match day {
                Some(d) => {
                    let date = ymd(year, m, d)?;
                    Some((Period::Span(date, date.succ_opt()?), k + 1))
                }
                None => Some((months_from(year, m, 1)?, k + 1)),
            };
        }
        // "may" is far more often the verb than the month.
        if allow_bare_month && day.is_none() && t.text != "may" {
            return Some((Period::MonthOfYear(m), i + 1));
        }
    }
    None
}

/// Words before a number that make it a quantity rather than a year ("over 2000").
fn quantity_context(prev: Option<&Token>, next: Option<&Token>) -> bool {
    let before = prev.is_some_and(|p| {
        matches!(
            p.text.as_str(),
            "over"
                | "above"
                | "under"
                | "below"
                | "than"
                | "least"
                | "most"
                | "top"
                | "bottom"
                | "$"
                | ">"
                | "<"
                | ">="
                | "<="
                | "="
                | "!="
                | "exactly"
                | "equals"
                | "exceeding"
                | "exceeds"
                | "exceed"
                | "to"
                | "first"
                | "last"
                | "best"
                | "worst"
        )
    });
    let after = next.is_some_and(|n| {
        matches!(
            n.text.as_str(),
            "%" | "units"
                | "unit"
                | "dollars"
                | "usd"
                | "items"
                | "orders"
                | "customers"
                | "products"
                | "percent"
        )
    });
    before || after
}

/// A calendar unit of a relative date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

fn unit_of(stem: &str) -> Option<Unit> {
    match stem {
        "day" => Some(Unit::Day),
        "week" => Some(Unit::Week),
        "month" => Some(Unit::Month),
        "quarter" => Some(Unit::Quarter),
        "year" => Some(Unit::Year),
        _ => None,
    }
}

fn unit_of_grain(g: Grain) -> Unit {
    match g {
        Grain::Day => Unit::Day,
        Grain::Week => Unit::Week,
        Grain::Month => Unit::Month,
        Grain::Quarter => Unit::Quarter,
        Grain::Year => Unit::Year,
    }
}

/// The first day of the time bucket of `g` that holds `day` (weeks start on Monday).
pub(crate) fn grain_start(g: Grain, day: NaiveDate) -> Option<NaiveDate> {
    period_of(unit_of_grain(g), day).map(|(s, _)| s)
}

/// `day` moved by `n` buckets of `g`.
pub(crate) fn grain_shift(g: Grain, day: NaiveDate, n: i64) -> Option<NaiveDate> {
    shift(unit_of_grain(g), day, n)
}

/// The calendar period of `unit` that holds `day`: `[start, end)`.
fn period_of(unit: Unit, day: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    let start = match unit {
        Unit::Day => day,
        Unit::Week => day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())),
        Unit::Month => ymd(day.year(), day.month(), 1)?,
        Unit::Quarter => ymd(day.year(), (day.month() - 1) / 3 * 3 + 1, 1)?,
        Unit::Year => ymd(day.year(), 1, 1)?,
    };
    Some((start, shift(unit, start, 1)?))
}

/// `day` moved by `n` units (back when negative).
fn shift(unit: Unit, day: NaiveDate, n: i64) -> Option<NaiveDate> {
    let months = |m: i64| {
        let k = Months::new(u32::try_from(m.unsigned_abs()).ok()?);
        if m >= 0 {
            day.checked_add_months(k)
        } else {
            day.checked_sub_months(k)
        }
    };
    match unit {
        Unit::Day => day.checked_add_signed(chrono::TimeDelta::try_days(n)?),
        Unit::Week => day.checked_add_signed(chrono::TimeDelta::try_days(n.checked_mul(7)?)?),
        Unit::Month => months(n),
        Unit::Quarter => months(n.checked_mul(3)?),
        Unit::Year => months(n.checked_mul(12)?),
    }
}

/// "last year", "this year", "previous year" at `i`: the year, and the index after it.
fn relative_year(tokens: &[Token], i: usize, today: NaiveDate) -> Option<(i32, usize)> {
    let anchor = tokens.get(i)?.text.as_str();
    if tokens.get(i + 1)?.stem != "year" {
        return None;
    }
    match anchor {
        "this" | "current" => Some((today.year(), i + 2)),
        "last" | "previous" | "prior" => Some((today.year() - 1, i + 2)),
        _ => None,
    }
}

/// The relative date expression at `i` against `today`: its range and the index after it.
fn relative_at(tokens: &[Token], i: usize, today: NaiveDate) -> Option<(DateRange, usize)> {
    let t = tokens.get(i)?;
    let next = |k: usize| tokens.get(i + k).map(|n| n.text.as_str());
    let tomorrow = today.succ_opt()?;
    let to_date = |unit: Unit, end: usize| {
        let (start, _) = period_of(unit, today)?;
        Some((span(start, tomorrow), end))
    };
    // "q3 last year", "the first quarter of this year", "march last year".
    let quarter = quarter_of(&t.text).and_then(|q| {
        if t.text.starts_with('q') {
            Some((q, i + 1))
        } else {
            (tokens.get(i + 1)?.stem == "quarter").then_some((q, i + 2))
        }
    });
    if let Some((q, j)) = quarter
        && let Some((year, end)) = relative_year(tokens, skip_the(tokens, j), today)
        && let Some(Period::Span(s, e)) = months_from(year, (q - 1) * 3 + 1, 3)
    {
        return Some((span(s, e), end));
    }
    if let Some(m) = month_of(&t.text)
        && t.text != "may"
        && let Some((year, end)) = relative_year(tokens, skip_the(tokens, i + 1), today)
        && let Some(Period::Span(s, e)) = months_from(year, m, 1)
    {
        return Some((span(s, e), end));
    }
    match t.text.as_str() {
        "today" => return Some((span(today, tomorrow), i + 1)),
        "yesterday" => return Some((span(today.pred_opt()?, today), i + 1)),
        "ytd" => return to_date(Unit::Year, i + 1),
        "qtd" => return to_date(Unit::Quarter, i + 1),
        "mtd" => return to_date(Unit::Month, i + 1),
        "so" if next(1) == Some("far") => {
            // "so far this year"
            let (range, end) = relative_at(tokens, i + 2, today)?;
            return Some((range, end));
        }
        _ => {}
    }
    // "year to date", "month to date".
    if let Some(unit) = unit_of(&t.stem)
        && next(1) == Some("to")
        && next(2) == Some("date")
    {
        return to_date(unit, i + 3);
    }
    // "3 days ago", "2 months ago": that day, that calendar month.
    if let Some(n) = t.number()
        && n.fract() == 0.0
        && (0.0..=1000.0).contains(&n)
        && let Some(unit) = tokens.get(i + 1).and_then(|u| unit_of(&u.stem))
        && next(2) == Some("ago")
    {
        // A whole number within 0..=1000, just checked.
        #[allow(clippy::cast_possible_truncation)]
        let back = shift(unit, today, -(n as i64))?;
        let (s, e) = period_of(unit, back)?;
        return Some((span(s, e), i + 3));
    }
    let anchor = t.text.as_str();
    if !matches!(
        anchor,
        "this" | "current" | "last" | "past" | "previous" | "prior"
    ) {
        return None;
    }
    // "the last 30 days", "past 3 months": the N units up to and including today.
    if let Some(n) = tokens.get(i + 1).and_then(Token::number)
        && n.fract() == 0.0
        && (1.0..=1000.0).contains(&n)
        && anchor != "this"
        && anchor != "current"
        && let Some(unit) = tokens.get(i + 2).and_then(|u| unit_of(&u.stem))
    {
        // A whole number within 1..=1000, just checked.
        #[allow(clippy::cast_possible_truncation)]
        let start = shift(unit, tomorrow, -(n as i64))?;
        return Some((span(start, tomorrow), i + 3));
    }
    let unit = tokens.get(i + 1).and_then(|u| unit_of(&u.stem))?;
    match anchor {
        // "this month": from its first day to today.
        "this" | "current" => to_date(unit, i + 2),
        // "the past month": the month up to today.
        "past" => Some((span(shift(unit, tomorrow, -1)?, tomorrow), i + 2)),
        // "last month": the previous calendar month.
        _ => {
            let (this_start, _) = period_of(unit, today)?;
            let (s, e) = period_of(unit, shift(unit, this_start, -1)?)?;
            Some((span(s, e), i + 2))
        }
    }
}

/// Words that may open a relative date expression and belong to it ("in the last month").
fn relative_lead(text: &str) -> bool {
    matches!(
        text,
        "in" | "during" | "for" | "over" | "within" | "from" | "of" | "the"
    )
}

/// Finds the dates relative to `today`, marks their tokens in `used` and returns the range
/// they describe together.
fn extract_relative(
    tokens: &[Token],
    used: &mut [bool],
    today: NaiveDate,
) -> Result<Option<DateRange>, String> {
    let mut found: Option<DateRange> = None;
    let mut i = 0;
    while i < tokens.len() {
        if used[i] {
            i += 1;
            continue;
        }
        let mut k = i;
        while tokens.get(k).is_some_and(|t| relative_lead(&t.text)) && !used[k] {
            k += 1;
        }
        match relative_at(tokens, k, today) {
            Some((range, end)) if (k..end).all(|x| !used[x]) => {
                mark(used, i, end);
                match &mut found {
                    Some(r) => r.intersect(&range)?,
                    None => found = Some(range),
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    Ok(found)
}

/// Finds the date expressions of a question, marks their tokens in `used` and returns the
/// range they describe together (intersected), or why they don't make sense. With `today`,
/// dates relative to it are read too.
pub(crate) fn extract(
    tokens: &[Token],
    used: &mut [bool],
    today: Option<NaiveDate>,
) -> Result<Option<DateRange>, String> {
    let mut found: Option<DateRange> = match today {
        Some(today) => extract_relative(tokens, used, today)?,
        None => None,
    };
    let add = |range: DateRange, found: &mut Option<DateRange>| -> Result<(), String> {
        match found {
            Some(r) => r.intersect(&range),
            None => {
                *found = Some(range);
                Ok(())
            }
        }
    };
    let mut i = 0;
    while i < tokens.len() {
        if used[i] {
            i += 1;
            continue;
        }
        let word = tokens[i].text.as_str();
        let two = tokens.get(i + 1).map(|n| format!("{word} {}", n.text));
        let three = tokens
            .get(i + 2)
            .and_then(|n| two.as_ref().map(|t| format!("{t} {}", n.text)));

        // "between A and B", "from A to B".
        if matches!(word, "between" | "from") {
            let a_at = skip_the(tokens, i + 1);
            if let Some((Period::Span(a0, a1), j)) = period_at(tokens, a_at, false)
                && let Some(sep) = tokens.get(j)
                && matches!(
                    sep.text.as_str(),
                    "and" | "to" | "until" | "till" | "through" | "thru"
                )
                && let Some((Period::Span(b0, b1), k)) = period_at(tokens, j + 1, false)
            {
                // Either order: "between 2024 and 2023" means the same years.
                let (start, end) = if b1 > a0 { (a0, b1) } else { (b0, a1) };
                mark(used, i, k);
                add(span(start, end), &mut found)?;
                i = k;
                continue;
            }
        }

        // Open ranges: "since A", "after A", "before A", "until A", "on or after A".
        let open = [
            (three.as_deref(), 3usize),
            (two.as_deref(), 2),
            (Some(word), 1),
        ]
        .into_iter()
        .find_map(|(w, n)| w.and_then(open_kind).map(|k| (k, n)));
        if let Some((kind, n)) = open {
            let at = skip_the(tokens, i + n);
            if let Some((Period::Span(a0, a1), j)) = period_at(tokens, at, false) {
                let range = match kind {
                    Open::From => DateRange {
                        start: Some(a0),
                        ..DateRange::default()
                    },
                    Open::After => DateRange {
                        start: Some(a1),
                        ..DateRange::default()
                    },
                    Open::Before => DateRange {
                        end: Some(a0),
                        ..DateRange::default()
                    },
                    Open::Until => DateRange {
                        end: Some(a1),
                        ..DateRange::default()
                    },
                };
                mark(used, i, j);
                add(range, &mut found)?;
                i = j;
                continue;
            }
        }

        // "in 2024", "during March 2024", "for Q1 2024", "in December", "in 2023 and 2024".
        let prep = matches!(word, "in" | "during" | "for" | "of" | "on" | "within");
        let at = if prep { skip_the(tokens, i + 1) } else { i };
        let bare_year_ok = prep
            || tokens[i].year().is_none()
            || !quantity_context(
                i.checked_sub(1).and_then(|p| tokens.get(p)),
                tokens.get(i + 1),
            );
        if bare_year_ok && let Some((p, mut j)) = period_at(tokens, at, prep) {
            let mut range = match p {
                Period::Span(s, e) => span(s, e),
                Period::MonthOfYear(m) => DateRange {
                    month_of_year: Some(m),
                    ..DateRange::default()
                },
            };
            // A contiguous run: "in 2023 and 2024", "January and February 2024" is not
            // attempted (the first month has no year).
            if let Period::Span(_, e) = p
                && tokens
                    .get(j)
                    .is_some_and(|t| matches!(t.text.as_str(), "and" | "or" | ","))
                && let Some((Period::Span(s2, e2), k)) = period_at(tokens, j + 1, false)
            {
                if s2 != e {
                    return Err(
                        "the question names separate periods; ask about one range at a time"
                            .to_owned(),
                    );
                }
                range.end = Some(e2);
                j = k;
            }
            mark(used, i, j);
            add(range, &mut found)?;
            i = j;
            continue;
        }
        i += 1;
    }
    Ok(found)
}

/// Two periods set against each other ("2024 vs 2023", "this year compared with last year",
/// "in Q3 2024 versus Q3 2023"): marks their tokens in `used` and returns them in the order
/// written. Read before [`extract`], which would see two ranges with no days in common.
pub(crate) fn extract_versus(
    tokens: &[Token],
    used: &mut [bool],
    today: Option<NaiveDate>,
) -> Option<(DateRange, DateRange)> {
    let period = |at: usize| -> Option<(DateRange, usize)> {
        if let Some((Period::Span(s, e), end)) = period_at(tokens, at, false) {
            return Some((span(s, e), end));
        }
        relative_at(tokens, at, today?)
    };
    for sep in 1..tokens.len() {
        let (word, next) = (
            tokens[sep].text.as_str(),
            tokens.get(sep + 1).map(|t| t.text.as_str()),
        );
        let sep_end = match (word, next) {
            ("vs" | "v" | "versus" | "against", _) => sep + 1,
            ("compared", Some("with" | "to")) => sep + 2,
            _ => continue,
        };
        // The left period ends at the separator; it starts a few words before it.
        let left = (sep.saturating_sub(5)..sep).find_map(|start| {
            period(start)
                .filter(|(_, end)| *end == sep)
                .map(|(r, _)| (start, r))
        });
        let Some((mut start, a)) = left else { continue };
        let mut at = sep_end;
        while tokens.get(at).is_some_and(|t| relative_lead(&t.text)) {
            at += 1;
        }
        let Some((b, end)) = period(at) else { continue };
        while start > 0 && relative_lead(&tokens[start - 1].text) {
            start -= 1;
        }
        if (start..end).any(|k| used[k]) {
            continue;
        }
        mark(used, start, end);
        return Some((a, b));
    }
    None
}

fn span(start: NaiveDate, end: NaiveDate) -> DateRange {
    DateRange {
        start: Some(start),
        end: Some(end),
        month_of_year: None,
    }
}

fn mark(used: &mut [bool], from: usize, to: usize) {
    for u in used.iter_mut().take(to).skip(from) {
        *u = true;
    }
}

#[derive(Clone, Copy)]
enum Open {
    From,
    After,
    Before,
    Until,
}

fn open_kind(words: &str) -> Option<Open> {
    Some(match words {
        "since" | "from" | "starting" | "starting from" | "starting on" | "starting in"
        | "on or after" | "beginning" | "as of" => Open::From,
        "after" | "later than" => Open::After,
        "before" | "prior to" | "earlier than" => Open::Before,
        "until" | "till" | "through" | "thru" | "up to" | "up until" | "on or before"
        | "no later than" => Open::Until,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::tokenize;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// `q`'s date range (read on `today`, when given) and the words no date took.
    fn read(q: &str, today: Option<NaiveDate>) -> (Option<DateRange>, Vec<String>) {
        let tokens = tokenize(q);
        let mut used = vec![false; tokens.len()];
        let r = extract(&tokens, &mut used, today).unwrap();
        let left = tokens
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(t, _)| t.text.clone())
            .collect();
        (r, left)
    }

    fn range(q: &str) -> (Option<DateRange>, Vec<String>) {
        read(q, None)
    }

    fn closed(q: &str) -> (NaiveDate, NaiveDate) {
        let r = range(q).0.unwrap();
        (r.start.unwrap(), r.end.unwrap())
    }

    #[test]
    fn years_months_quarters_days() {
        assert_eq!(
            closed("revenue in 2024"),
            (d("2024-01-01"), d("2025-01-01"))
        );
        assert_eq!(closed("2024 revenue"), (d("2024-01-01"), d("2025-01-01")));
        assert_eq!(closed("in March 2024"), (d("2024-03-01"), d("2024-04-01")));
        assert_eq!(closed("during 2024-11"), (d("2024-11-01"), d("2024-12-01")));
        assert_eq!(closed("in Q4 2024"), (d("2024-10-01"), d("2025-01-01")));
        assert_eq!(closed("2025 q1"), (d("2025-01-01"), d("2025-04-01")));
        assert_eq!(
            closed("in the second quarter of 2024"),
            (d("2024-04-01"), d("2024-07-01"))
        );
        assert_eq!(closed("on 2024-02-29"), (d("2024-02-29"), d("2024-03-01")));
        assert_eq!(
            closed("on march 5, 2024"),
            (d("2024-03-05"), d("2024-03-06"))
        );
        assert_eq!(
            closed("in 2023 and 2024"),
            (d("2023-01-01"), d("2025-01-01"))
        );
        let (r, left) = range("revenue in December by category");
        assert_eq!(r.unwrap().month_of_year, Some(12));
        assert_eq!(left, ["revenue", "by", "category"]);
    }

    #[test]
    fn ranges_and_open_ends() {
        assert_eq!(
            closed("between 2024-03-01 and 2024-05-31"),
            (d("2024-03-01"), d("2024-06-01"))
        );
        assert_eq!(
            closed("from 2023 to 2024"),
            (d("2023-01-01"), d("2025-01-01"))
        );
        assert_eq!(
            closed("from january 2024 through march 2024"),
            (d("2024-01-01"), d("2024-04-01"))
        );
        let since = range("orders from Germany since 2025-06-01").0.unwrap();
        assert_eq!((since.start, since.end), (Some(d("2025-06-01")), None));
        let before = range("customers who signed up before 2024").0.unwrap();
        assert_eq!((before.start, before.end), (None, Some(d("2024-01-01"))));
        let after = range("after 2024-03-01").0.unwrap();
        assert_eq!(after.start, Some(d("2024-03-02")));
        let until = range("until 2024").0.unwrap();
        assert_eq!(until.end, Some(d("2025-01-01")));
        // Two open ends intersect.
        assert_eq!(
            closed("since 2024-03-01 and before 2024-06-01"),
            (d("2024-03-01"), d("2024-06-01"))
        );
    }

    #[test]
    fn quantities_are_not_years() {
        assert_eq!(range("products with unit price over 2000").0, None);
        assert_eq!(range("top 5 products").0, None);
        assert_eq!(range("more than 2000 orders").0, None);
        assert_eq!(range("from Germany").0, None);
        assert_eq!(range("may I see revenue").0, None);
    }

    #[test]
    fn contradictions_are_errors() {
        let tokens = tokenize("in 2023 since 2024-06-01");
        let mut used = vec![false; tokens.len()];
        assert!(extract(&tokens, &mut used, None).is_err());
        let tokens = tokenize("in 2023 and 2025");
        let mut used = vec![false; tokens.len()];
        assert!(extract(&tokens, &mut used, None).is_err());
    }

    /// `q` read on Thursday 2025-11-20: the range as `[first, last]` days and the words left.
    fn relative(q: &str) -> (Option<(NaiveDate, NaiveDate)>, Vec<String>) {
        let (r, left) = read(q, Some(d("2025-11-20")));
        let days = r.map(|r| (r.start.unwrap(), r.end.unwrap().pred_opt().unwrap()));
        (days, left)
    }

    #[test]
    fn dates_relative_to_today() {
        let cases = [
            ("revenue today", "2025-11-20", "2025-11-20"),
            ("orders yesterday", "2025-11-19", "2025-11-19"),
            ("revenue this year", "2025-01-01", "2025-11-20"),
            ("revenue so far this year", "2025-01-01", "2025-11-20"),
            ("revenue year to date", "2025-01-01", "2025-11-20"),
            ("revenue ytd", "2025-01-01", "2025-11-20"),
            ("units sold this month", "2025-11-01", "2025-11-20"),
            ("orders this quarter", "2025-10-01", "2025-11-20"),
            ("orders this week", "2025-11-17", "2025-11-20"),
            ("revenue last month", "2025-10-01", "2025-10-31"),
            ("revenue in the previous month", "2025-10-01", "2025-10-31"),
            ("orders last week", "2025-11-10", "2025-11-16"),
            ("revenue last quarter", "2025-07-01", "2025-09-30"),
            ("revenue last year", "2024-01-01", "2024-12-31"),
            (
                "new customers in the past 30 days",
                "2025-10-22",
                "2025-11-20",
            ),
            ("orders over the last 7 days", "2025-11-14", "2025-11-20"),
            ("revenue in the past 3 months", "2025-08-21", "2025-11-20"),
            ("revenue in the past month", "2025-10-21", "2025-11-20"),
            ("revenue in the last 2 years", "2023-11-21", "2025-11-20"),
            ("revenue in Q3 last year", "2024-07-01", "2024-09-30"),
            (
                "revenue in the first quarter of this year",
                "2025-01-01",
                "2025-03-31",
            ),
            ("revenue in march last year", "2024-03-01", "2024-03-31"),
            ("orders 3 days ago", "2025-11-17", "2025-11-17"),
            ("orders 2 months ago", "2025-09-01", "2025-09-30"),
        ];
        for (q, first, last) in cases {
            let (days, left) = relative(q);
            assert_eq!(days, Some((d(first), d(last))), "{q}");
            assert!(
                left.iter().all(|w| !matches!(
                    w.as_str(),
                    "last" | "past" | "this" | "in" | "the" | "over"
                )),
                "{q}: left {left:?}"
            );
        }
        // Absolute and relative dates together narrow each other.
        assert_eq!(
            relative("revenue this year since 2025-06-01").0,
            Some((d("2025-06-01"), d("2025-11-20")))
        );
        // Not dates: "the last order", "past customers", "top 5 in the last category".
        for q in ["the last order", "past customers", "last 5 orders"] {
            assert_eq!(relative(q).0, None, "{q}");
        }
        // Without a day to read them against, relative dates are left for the refusal.
        let (r, left) = range("revenue last month");
        assert_eq!(r, None);
        assert!(left.contains(&"last".to_owned()));
    }

    #[test]
    fn descriptions() {
        assert_eq!(range("in 2024").0.unwrap().describe(), "in 2024");
        assert_eq!(
            range("in march 2024").0.unwrap().describe(),
            "in March 2024"
        );
        assert_eq!(range("q2 2024").0.unwrap().describe(), "in Q2 2024");
        assert_eq!(
            range("between 2024-03-01 and 2024-05-31")
                .0
                .unwrap()
                .describe(),
            "from 2024-03-01 to 2024-05-31"
        );
        assert_eq!(
            range("since 2025-06-01").0.unwrap().describe(),
            "on or after 2025-06-01"
        );
    }
}
