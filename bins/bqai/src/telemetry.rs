//! Logging setup: a tracing subscriber writing text or JSON lines to stderr.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber (once per process; later calls are ignored so tests may
/// call it freely).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if settings.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
