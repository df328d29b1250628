//! User data files (CSV with a header row, Parquet, NDJSON) found from the configured
//! directories, files or globs, and read into memory at start.
//!
//! A file becomes table `<stem>` of dataset `<parent folder>`, both lowercased with every
//! character outside `[a-z0-9_]` replaced by `_` (and a leading digit prefixed with `_`, so the
//! names are plain SQL identifiers). Directories are read one level deep; use a glob such as
//! `data/**/*.csv` to reach further.

use std::path::{Path, PathBuf};

use bqai_core::{Error, Result};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{CsvReadOptions, JsonReadOptions, ParquetReadOptions, SessionContext};

/// A supported file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Parquet,
    NdJson,
}

impl Format {
    fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            "json" | "ndjson" | "jsonl" => Some(Format::NdJson),
            _ => None,
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Format::Csv => "CSV",
            Format::Parquet => "Parquet",
            Format::NdJson => "NDJSON",
        }
    }
}

/// A file to load and the table it becomes.
#[derive(Debug, Clone)]
pub(crate) struct DataFile {
    pub(crate) path: PathBuf,
    pub(crate) format: Format,
    pub(crate) dataset: String,
    pub(crate) table: String,
}

/// Rows read from a file.
pub(crate) struct LoadedFile {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

/// Lowercases and replaces everything outside `[a-z0-9_]` with `_`.
pub(crate) fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("data file {}: {what}", path.display()))
}

/// Expands the configured entries into the files to load, in a stable order.
pub(crate) fn discover(entries: &[String]) -> Result<Vec<DataFile>> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let before = paths.len();
        if entry.contains(['*', '?', '[']) {
            let matches = glob::glob(entry).map_err(|e| {
                Error::InvalidRequest(format!("data path {entry}: invalid glob pattern: {e}"))
            })?;
            for m in matches {
                let path = m.map_err(|e| invalid(e.path(), e.error()))?;
                if path.is_file() && Format::of(&path).is_some() {
                    paths.push(path);
                }
            }
        } else {
            let path = PathBuf::from(entry);
            let meta = std::fs::metadata(&path).map_err(|e| invalid(&path, e))?;
            if meta.is_dir() {
                let mut found: Vec<PathBuf> = std::fs::read_dir(&path)
                    .map_err(|e| invalid(&path, e))?
                    .filter_map(|d| d.ok().map(|d| d.path()))
                    .filter(|p| p.is_file() && Format::of(p).is_some())
                    .collect();
                found.sort();
                paths.extend(found);
            } else if Format::of(&path).is_some() {
                paths.push(path);
            } else {
                return Err(invalid(
                    &path,
                    "unsupported file type (expected .csv, .parquet, .json, .ndjson or .jsonl)",
                ));
            }
        }
        if paths.len() == before {
            return Err(Error::InvalidRequest(format!(
                "data path {entry}: no CSV, Parquet or NDJSON files found"
            )));
        }
    }

    let mut files: Vec<DataFile> = Vec::with_capacity(paths.len());
    for path in paths {
        let absolute = std::fs::canonicalize(&path).map_err(|e| invalid(&path, e))?;
        if files.iter().any(|f| f.path == absolute) {
            continue;
        }
        let format =
            Format::of(&absolute).ok_or_else(|| invalid(&path, "unsupported file type"))?;
        let folder = absolute
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap_or("files");
        let stem = absolute
            .file_stem()
            .and_then(|n| n.to_str())
            .ok_or_else(|| invalid(&path, "file name is not valid UTF-8"))?;
        files.push(DataFile {
            path: absolute.clone(),
            format,
            dataset: sanitize(folder),
            table: sanitize(stem),
        });
    }
    Ok(files)
}

/// Reads a whole file with DataFusion's readers (schema inferred), on a loader session that is
/// never used for caller SQL.
pub(crate) async fn load(ctx: &SessionContext, file: &DataFile) -> Result<LoadedFile> {
    let path = file
        .path
        .to_str()
        .ok_or_else(|| invalid(&file.path, "path is not valid UTF-8"))?;
    // DataFusion filters listed files by extension: pass the file's own (`.JSONL`, `.csv` …).
    let extension = file
        .path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| format!(".{e}"))
        .unwrap_or_default();
    let read_error = |e: datafusion::error::DataFusionError| {
        invalid(
            &file.path,
            format!(
                "cannot read as {}: {}",
                file.format.label(),
                e.strip_backtrace()
            ),
        )
    };
    let frame = match file.format {
        Format::Csv => {
            ctx.read_csv(
                path,
                CsvReadOptions::new()
                    .has_header(true)
                    .file_extension(&extension),
            )
            .await
        }
        Format::Parquet => {
            ctx.read_parquet(
                path,
                ParquetReadOptions {
                    file_extension: &extension,
                    ..Default::default()
                },
            )
            .await
        }
        Format::NdJson => {
            ctx.read_json(
                path,
                JsonReadOptions {
                    file_extension: &extension,
                    ..Default::default()
                },
            )
            .await
        }
    }
    .map_err(read_error)?;
    let declared: SchemaRef = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(read_error)?;
    let schema = batches.first().map_or(declared, RecordBatch::schema);
    Ok(LoadedFile { schema, batches })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("Sales Data-2024"), "sales_data_2024");
        assert_eq!(sanitize("2024"), "_2024");
        assert_eq!(sanitize("Émile"), "_mile");
        assert_eq!(sanitize(""), "_");
    }

    #[test]
    fn missing_paths_are_invalid_requests() {
        let err = discover(&["/definitely/not/here.csv".to_owned()]).unwrap_err();
        assert!(
            matches!(err, Error::InvalidRequest(ref m) if m.contains("/definitely/not/here.csv")),
            "{err:?}"
        );
    }
}
