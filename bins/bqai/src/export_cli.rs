//! `bqai export`: a whole result into a file, through the same checks and caps as
//! `POST /api/v1/exports` (the guard, the dry run, the byte cap, `export.max_rows`), with a
//! progress bar of rows and bytes on a terminal and a line per second otherwise.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bqai_core::history::QueryKind;
use bqai_core::model::QueryRequest;
use bqai_core::query::RecordMeta;
use bqai_export::{Format, Options};
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::Settings;
use crate::startup::Services;

/// What to export and how (the arguments of `bqai export`).
#[derive(Debug)]
pub struct ExportArgs {
    /// The SQL, unless `history_id` names it.
    pub sql: Option<String>,
    /// A history entry whose SQL to run again.
    pub history_id: Option<String>,
    /// The file format.
    pub format: Format,
    /// Where the file goes.
    pub output: PathBuf,
    /// Dataset for unqualified table names.
    pub dataset: Option<String>,
    /// Row cap (at most `export.max_rows`).
    pub max_rows: Option<u64>,
    /// Query timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// CSV delimiter.
    pub delimiter: Option<String>,
}

/// Runs `bqai export`.
pub async fn export(settings: &Settings, args: ExportArgs) -> anyhow::Result<()> {
    let mut options = Options::default();
    if let Some(d) = &args.delimiter {
        anyhow::ensure!(
            args.format == Format::Csv,
            "--delimiter applies to --format csv only"
        );
        options = options.with_delimiter(d).map_err(|e| anyhow::anyhow!(e))?;
    }
    let services = Services::build(settings).await?;
    let (request, rerun_of) = match (&args.sql, &args.history_id) {
        (Some(sql), None) => (
            QueryRequest {
                default_dataset: args.dataset.clone(),
                ..QueryRequest::new(sql.clone())
            },
            None,
        ),
        (None, Some(id)) => {
            let entry = crate::history_cli::entry(services.history.as_ref(), id).await?;
            (
                entry.rerun_request().map_err(|e| anyhow::anyhow!("{e}"))?,
                Some(id.clone()),
            )
        }
        _ => anyhow::bail!("give the SQL or --history-id, not both"),
    };
    let request = QueryRequest {
        max_rows: args.max_rows,
        timeout: args.timeout_ms.map(Duration::from_millis),
        // Streams never come from bqai's cache; BigQuery's own may answer (free).
        use_cache: true,
        ..request
    };
    let meta = RecordMeta {
        kind: QueryKind::Export,
        rerun_of,
        ..RecordMeta::default()
    };
    let outcome = run(&services, settings, request, meta, &args, options).await;
    // The history entry is queued in front of the store: write it before exiting.
    services.flush_history(Duration::from_secs(5)).await;
    outcome
}

async fn run(
    services: &Services,
    settings: &Settings,
    request: QueryRequest,
    meta: RecordMeta,
    args: &ExportArgs,
    options: Options,
) -> anyhow::Result<()> {
    let principal = &services.anonymous;
    let planned = services
        .queries
        .plan_export(request, principal, settings.export.max_rows, meta.clone())
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let started = Instant::now();
    let streamed = services
        .queries
        .stream_planned(planned, principal, meta)
        .await
        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("could not create {}", args.output.display()))?;
    let out = std::io::BufWriter::with_capacity(256 * 1024, file);
    let progress = Progress::new();
    let reporter = progress.clone();
    let written = bqai_export::encode_stream(
        streamed.rows,
        args.format,
        options,
        out,
        move |rows, bytes| {
            reporter.update(rows, bytes);
        },
    )
    .await;
    progress.finish();
    match written {
        Ok(w) => {
            services
                .queries
                .finish_stream(streamed.record, w.rows, None)
                .await;
            let took = started.elapsed();
            writeln!(
                std::io::stderr().lock(),
                "exported {} rows ({}) to {} in {:.1} s (history id {})",
                w.rows,
                HumanBytes(w.bytes),
                args.output.display(),
                took.as_secs_f64(),
                streamed.query_id
            )?;
            Ok(())
        }
        Err(failure) => {
            let error = failure.into_core();
            let message = format!("{error} ({})", error.code());
            services
                .queries
                .finish_stream(streamed.record, 0, Some(error))
                .await;
            remove_partial(&args.output);
            anyhow::bail!("the export stopped before its end: {message}")
        }
    }
}

/// A cut file must not pass for a whole one.
fn remove_partial(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the partial export");
    }
}

/// Rows and bytes so far: a bar on a terminal, else a line on stderr at most once a second.
#[derive(Clone)]
struct Progress {
    bar: ProgressBar,
    last_line: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {human_pos} rows, {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            last_line: std::sync::Arc::default(),
        }
    }

    fn update(&self, rows: u64, bytes: u64) {
        self.bar.set_position(rows);
        self.bar.set_message(HumanBytes(bytes).to_string());
        if self.bar.is_hidden()
            && let Ok(mut last) = self.last_line.lock()
            && last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            *last = Some(Instant::now());
            let _ = writeln!(
                std::io::stderr().lock(),
                "… {rows} rows, {}",
                HumanBytes(bytes)
            );
        }
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
