//! The short text beside each tool's structured result. Many MCP clients show a model only the
//! text content, so it carries the answer itself — the rows as a table, an estimate in bytes
//! and dollars — bounded so a large result does not flood the model's context (the
//! structured content has all of it).

use std::fmt::Write as _;

use serde_json::Value;

/// Rows shown in the text of a result.
const MAX_TEXT_ROWS: usize = 50;

/// Bytes of text at most (a few thousand tokens).
const MAX_TEXT_BYTES: usize = 16 * 1024;

/// Longest cell shown.
const MAX_CELL_CHARS: usize = 200;

/// A result's rows (`{"columns": [{"name"}], "rows": [{…}], "row_count", "truncated"}`) as a
/// Markdown table, with what was left out said below it.
pub(crate) fn rows(v: &Value) -> String {
    let names: Vec<&str> = v["columns"]
        .as_array()
        .map(|cols| cols.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    let rows = v["rows"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = String::new();
    if names.is_empty() {
        out.push_str("(no columns)\n");
    } else {
        let _ = writeln!(out, "| {} |", names.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(names.len()));
    }
    let mut shown = 0;
    for row in rows {
        if shown == MAX_TEXT_ROWS || out.len() > MAX_TEXT_BYTES {
            break;
        }
        let cells: Vec<String> = names.iter().map(|n| cell(&row[*n])).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
        shown += 1;
    }
    let total = v["row_count"].as_u64().unwrap_or(rows.len() as u64);
    let _ = write!(out, "{total} row{}", if total == 1 { "" } else { "s" });
    if shown < rows.len() {
        let _ = write!(
            out,
            "; the first {shown} are shown here, all {} are in the structured result",
            rows.len()
        );
    }
    if v["truncated"].as_bool() == Some(true) {
        let reason = v["truncated_reason"].as_str().unwrap_or("max_rows");
        let _ = write!(
            out,
            "; the result was cut ({reason}): raise max_rows, aggregate, or use the export tool"
        );
    }
    out.push('.');
    out
}

fn cell(v: &Value) -> String {
    let s = match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = s.replace('|', "\\|").replace('\n', " ");
    if s.chars().count() > MAX_CELL_CHARS {
        let cut: String = s.chars().take(MAX_CELL_CHARS).collect();
        format!("{cut}…")
    } else {
        s
    }
}

/// A query response: the estimate of a dry run, or the rows and what they cost.
pub(crate) fn query(v: &Value) -> String {
    let stats = &v["stats"];
    let bytes = stats["bytes_processed"].as_u64().unwrap_or(0);
    let cost = stats["estimated_cost_usd"].as_f64().unwrap_or(0.0);
    if v["dry_run"].as_bool() == Some(true) {
        return format!(
            "Dry run, nothing ran: the query would process {} (about ${cost:.4}).\nSQL: {}",
            bytes_text(bytes),
            v["sql"].as_str().unwrap_or("")
        );
    }
    let cache = if stats["cache_hit"].as_bool() == Some(true) {
        ", from cache"
    } else {
        ""
    };
    format!(
        "{}\nProcessed {} (about ${cost:.4}){cache}; query_id {}.",
        rows(v),
        bytes_text(bytes),
        v["query_id"].as_str().unwrap_or("")
    )
}

/// Bytes for people: `1.5 MiB`.
pub(crate) fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A list of items, one line each, through `line`, with the next page's token if any.
pub(crate) fn list(v: &Value, what: &str, line: impl Fn(&Value) -> String) -> String {
    let items = v["data"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = format!("{} {what}:\n", items.len());
    for item in items {
        let _ = writeln!(out, "- {}", line(item));
    }
    if let Some(token) = v["next_page_token"].as_str() {
        let _ = write!(out, "More: call again with page_token {token:?}.");
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_render_as_a_table_and_say_what_is_left_out() {
        let data: Vec<Value> = (0..60).map(|i| json!({"n": i, "s": "a|b"})).collect();
        let v = json!({"columns": [{"name": "n"}, {"name": "s"}], "rows": data, "row_count": 60, "truncated": true, "truncated_reason": "max_rows"});
        let text = rows(&v);
        assert!(text.starts_with("| n | s |\n|---|---|\n| 0 | a\\|b |\n"));
        assert!(text.contains("| 49 |"));
        assert!(!text.contains("| 50 |"));
        assert!(text.contains("60 rows; the first 50 are shown here"));
        assert!(text.contains("cut (max_rows)"));
    }

    #[test]
    fn estimates_and_sizes_read_plainly() {
        let v = json!({"dry_run": true, "sql": "SELECT 1", "stats": {"bytes_processed": 3_221_225_472u64, "estimated_cost_usd": 0.01876}});
        assert_eq!(
            query(&v),
            "Dry run, nothing ran: the query would process 3.0 GiB (about $0.0188).\nSQL: SELECT 1"
        );
        assert_eq!(bytes_text(512), "512 bytes");
    }
}
