//! The SVG chart: one horizontal bar of requests/s per configuration, in two
//! panels (hello, I/O-bound) because their scales differ by orders of
//! magnitude; colour says which server.
//!
//! Plain SVG text with no dependencies and no scripts, so it renders on
//! GitHub and in mdBook alike. It draws medians only; the table has the rest.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;

use crate::plan::{ServerKind, Workload};
use crate::results::Row;

const WIDTH: f64 = 900.0;
const LABEL_WIDTH: f64 = 300.0;
const BAR_LEFT: f64 = LABEL_WIDTH + 10.0;
/// Room right of the longest bar for its value.
const VALUE_ROOM: f64 = 90.0;
const BAR_HEIGHT: f64 = 18.0;
const ROW_HEIGHT: f64 = 24.0;
const TITLE_HEIGHT: f64 = 34.0;
const LEGEND_HEIGHT: f64 = 30.0;

/// Writes the chart for `rows` to `path`.
pub fn write(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, svg(rows)).with_context(|| format!("cannot write {}", path.display()))
}

fn svg(rows: &[Row]) -> String {
    let panels = [
        (
            Workload::Hello,
            "Hello, WASI! (wrk, 32 connections unless labelled): requests/s",
        ),
        (
            Workload::Echo,
            "axum-p3 /echo, the body up and back (wrk, 16 connections): requests/s",
        ),
        (
            Workload::IoBound,
            "sleep-p3 ?ms=40 (wrk, 200 connections): requests/s",
        ),
        (
            Workload::Proxy,
            "proxy-p3 to a 40 ms backend (wrk, 200 connections): requests/s",
        ),
    ];
    let mut body = String::new();
    let mut y = LEGEND_HEIGHT;
    for (workload, title) in panels {
        let panel: Vec<&Row> = rows
            .iter()
            .filter(|row| row.config.workload == workload)
            .collect();
        if !panel.is_empty() {
            y = draw_panel(&mut body, title, &panel, y);
        }
    }
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{y}\" \
         viewBox=\"0 0 {WIDTH} {y}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    draw_legend(&mut out);
    out.push_str(&body);
    out.push_str("</svg>\n");
    out
}

fn draw_legend(out: &mut String) {
    let mut x = 10.0;
    for server in [
        ServerKind::HostRunner,
        ServerKind::Wasmtime,
        ServerKind::Native,
    ] {
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"8\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{}\" y=\"18\">{server}</text>",
            colour(server),
            x + 18.0
        );
        x += 150.0;
    }
}

/// Draws one panel from `top`; returns where the next one starts.
fn draw_panel(out: &mut String, title: &str, rows: &[&Row], top: f64) -> f64 {
    let _ = writeln!(
        out,
        "<text x=\"10\" y=\"{}\" font-weight=\"bold\" font-size=\"13\">{}</text>",
        top + 22.0,
        escape(title)
    );
    let scale = rows
        .iter()
        .map(|row| row.requests_per_sec())
        .filter(|rps| rps.is_finite())
        .fold(0.0, f64::max);
    let bar_room = WIDTH - BAR_LEFT - VALUE_ROOM;
    let mut y = top + TITLE_HEIGHT;
    for row in rows {
        let rps = row.requests_per_sec();
        let length = if scale > 0.0 && rps.is_finite() {
            (rps / scale * bar_room).max(1.0)
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "<text x=\"{LABEL_WIDTH}\" y=\"{text_y}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{BAR_LEFT}\" y=\"{y}\" width=\"{length:.1}\" height=\"{BAR_HEIGHT}\" fill=\"{fill}\"/>\
             <text x=\"{value_x:.1}\" y=\"{text_y}\">{rps:.0}</text>",
            text_y = y + 13.0,
            label = escape(&row.config.label()),
            fill = colour(row.config.server),
            value_x = BAR_LEFT + length + 6.0,
        );
        y += ROW_HEIGHT;
    }
    y + 6.0
}

fn colour(server: ServerKind) -> &'static str {
    match server {
        ServerKind::HostRunner => "#2b6cb0",
        ServerKind::Wasmtime => "#dd6b20",
        ServerKind::Native => "#718096",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xml() {
        assert_eq!(escape("a < b & c"), "a &lt; b &amp; c");
    }

    #[test]
    fn empty_run_still_draws_a_valid_document() {
        let svg = svg(&[]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
