//! DataFusion errors translated into [`bqai_core::Error`] at the adapter boundary.
//!
//! Errors caused by the caller's SQL (syntax, unknown columns, types, unsupported features,
//! runtime errors such as division by zero) become `InvalidQuery` with DataFusion's message,
//! cleaned of backtraces and internal prefixes; unknown tables and datasets become `NotFound`;
//! exhausted memory becomes `Unavailable`; the rest is `Internal` with the cause kept for logs.

use bqai_core::Error;
use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;

use crate::HOME_CATALOG;

/// The default schema of sessions without a default dataset: a name no dataset can have
/// (sanitised names never start with a dot), so unqualified names fail with a clear message.
pub(crate) const NO_DEFAULT_DATASET: &str = ".no_default_dataset";

/// Upper bound on a message shown to callers; DataFusion can list hundreds of candidates.
const MAX_MESSAGE: usize = 2_000;

/// Maps an error raised while planning or running the caller's query.
pub(crate) fn query_error(err: DataFusionError) -> Error {
    let root = err.find_root();
    match root {
        DataFusionError::ResourcesExhausted(_) => {
            Error::unavailable("the local query engine (memory limit reached)", err)
        }
        _ if let Some(e) = regex_error(&err) => {
            Error::InvalidQuery(clean(&format!("invalid regular expression: {e}")))
        }
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::ComputeError(_)
            | ArrowError::DivideByZero
            | ArrowError::CastError(_)
            | ArrowError::ParseError(_)
            | ArrowError::InvalidArgumentError(_)
            | ArrowError::ArithmeticOverflow(_) => Error::InvalidQuery(clean(&arrow.to_string())),
            ArrowError::MemoryError(_) => {
                Error::unavailable("the local query engine (memory limit reached)", err)
            }
            _ => Error::internal("running a query on DataFusion", err),
        },
        DataFusionError::SQL(parser, _) => Error::InvalidQuery(clean(&parser.to_string())),
        DataFusionError::Plan(message) => planning_error(message),
        DataFusionError::SchemaError(schema, _) => Error::InvalidQuery(clean(&schema.to_string())),
        DataFusionError::NotImplemented(message) => {
            Error::InvalidQuery(clean(&format!("not supported: {message}")))
        }
        DataFusionError::Execution(message) => Error::InvalidQuery(clean(message)),
        // Only the caller's SQL can carry settings here (statements are refused), e.g. a
        // `STORED AS` format that does not exist.
        DataFusionError::Configuration(message) => Error::InvalidQuery(clean(message)),
        _ => Error::internal("running a query on DataFusion", err),
    }
}

/// A pattern in the caller's SQL that does not compile (`regexp_like(x, '(')`), wherever
/// DataFusion wrapped it (an optimizer rule's context, an external or Arrow error).
/// DataFusion compiles some patterns with `regex` and some with `regex-syntax` directly.
fn regex_error(err: &DataFusionError) -> Option<&(dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find(|e| e.is::<regex::Error>() || e.is::<regex_syntax::Error>())
}

/// `table '…' not found` and `failed to resolve schema: …` are lookups, not bad SQL.
fn planning_error(message: &str) -> Error {
    let message = clean(message);
    if let Some(name) = message
        .strip_prefix("table '")
        .and_then(|rest| rest.strip_suffix("' not found"))
    {
        if name.starts_with(&format!("{HOME_CATALOG}.{NO_DEFAULT_DATASET}.")) {
            return unqualified();
        }
        let name = name
            .strip_prefix(&format!("{HOME_CATALOG}."))
            .unwrap_or(name);
        return Error::NotFound(format!("table {name}"));
    }
    if let Some(schema) = message.strip_prefix("failed to resolve schema: ") {
        if schema == NO_DEFAULT_DATASET {
            return unqualified();
        }
        return Error::NotFound(format!("dataset {schema}"));
    }
    if let Some(catalog) = message.strip_prefix("failed to resolve catalog: ") {
        return Error::NotFound(format!("project {catalog}"));
    }
    Error::InvalidQuery(message)
}

fn unqualified() -> Error {
    Error::InvalidQuery(
        "table name is missing its dataset and no default dataset is set: write dataset.table"
            .to_owned(),
    )
}

/// Drops backtraces and trailing whitespace and bounds the length.
fn clean(message: &str) -> String {
    let message = message
        .split(DataFusionError::BACK_TRACE_SEP)
        .next()
        .unwrap_or_default()
        .trim();
    if message.len() <= MAX_MESSAGE {
        return message.to_owned();
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_not_found_is_not_found() {
        let e = query_error(DataFusionError::Plan(
            "table 'datafusion.shop.nope' not found".into(),
        ));
        assert!(
            matches!(e, Error::NotFound(ref m) if m == "table shop.nope"),
            "{e:?}"
        );
    }

    #[test]
    fn unknown_schema_is_not_found() {
        let e = query_error(DataFusionError::Plan(
            "failed to resolve schema: nope".into(),
        ));
        assert!(
            matches!(e, Error::NotFound(ref m) if m == "dataset nope"),
            "{e:?}"
        );
    }

    #[test]
    fn wrapped_errors_are_unwrapped() {
        let inner = DataFusionError::Plan("No function matches".into());
        let e = query_error(DataFusionError::Context("ctx".into(), Box::new(inner)));
        assert!(
            matches!(e, Error::InvalidQuery(ref m) if m == "No function matches"),
            "{e:?}"
        );
        let e = query_error(DataFusionError::ResourcesExhausted("pool".into()));
        assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
        let e = query_error(DataFusionError::Internal("bug".into()));
        assert!(matches!(e, Error::Internal { .. }), "{e:?}");
    }

    #[test]
    fn an_invalid_pattern_is_the_callers_mistake() {
        let pattern = String::from("(");
        let bad = regex::Regex::new(&pattern).err().map(|e| Box::new(e) as _);
        let Some(bad) = bad else {
            panic!("'(' compiled")
        };
        let e = query_error(DataFusionError::Context(
            "Optimizer rule 'simplify_expressions' failed".into(),
            Box::new(DataFusionError::External(bad)),
        ));
        assert!(
            matches!(e, Error::InvalidQuery(ref m) if m.starts_with("invalid regular expression")),
            "{e:?}"
        );
    }

    #[test]
    fn messages_are_bounded_and_without_backtrace() {
        let long = format!("x{}backtrace here", DataFusionError::BACK_TRACE_SEP);
        assert_eq!(clean(&long), "x");
        assert!(clean(&"é".repeat(5_000)).len() <= MAX_MESSAGE + 4);
    }
}
