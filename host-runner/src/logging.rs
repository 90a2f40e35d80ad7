//! host-runner's own log lines: `tracing` events written to stderr, as text
//! or one JSON object per line, filtered like `RUST_LOG` (default `info`).
//!
//! Events about a request carry `request_id` and `instance` as fields, so
//! every such line names both. This module
//! only installs the subscriber; it does not decide what is logged, and the
//! lines scripts parse (`Serving HTTP on …`) are printed plainly by the
//! binary, outside `tracing`, whatever the format.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::options::LogFormat;

/// The filter used when `RUST_LOG` is not set.
const DEFAULT_FILTER: &str = "info";

/// Installs the global subscriber. Fails when `RUST_LOG` is set but not a
/// valid filter, with a message saying what to set instead.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(text) if !text.trim().is_empty() => EnvFilter::try_new(&text).map_err(|e| {
            format!("RUST_LOG={text:?} is not a valid log filter ({e}); use e.g. RUST_LOG=info or RUST_LOG=host_runner=debug,guest=off")
        })?,
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // An embedder or a test may have installed one already: theirs stays.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}
