//! The Prometheus text exposition format, as far as host-runner writes it:
//! the `# HELP` and `# TYPE` lines before each metric. The counters and the
//! thread gauges both write through here; it holds no metric itself.

use std::fmt::Write as _;

/// The `# HELP` and `# TYPE` lines of metric `name`.
pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
