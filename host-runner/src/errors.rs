//! How host-runner writes an error: on one line, whatever the error's
//! source (wasmtime's multi-line details, anyhow's chain of causes). The
//! bottom of the layers, so every layer can use it; it does not decide
//! what an error says or which status answers it.

/// An error on one line: causes joined the way `{:#}` does, and any line
/// breaks inside them (wasmtime's multi-line details) folded. Every error
/// host-runner prints or answers with goes through here.
pub fn one_line(error: &dyn std::fmt::Display) -> String {
    format!("{error:#}")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}
