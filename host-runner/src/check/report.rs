//! What `check` found, and the two ways it is shown: a few lines a person
//! reads at a glance (one per finding, then a verdict), and JSON for CI.
//!
//! This module only presents; deciding what is a finding is the check
//! module's job.

use std::fmt;

use serde::Serialize;

use super::compare::Difference;

/// The result of a check.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The component file.
    pub component: String,
    /// `p2` or `p3`.
    pub world: &'static str,
    /// The shuffle seed (`--seed` reproduces the run).
    pub seed: u64,
    /// Rounds of the reused modes.
    pub rounds: usize,
    /// The probes, as `METHOD /path`.
    pub requests: Vec<String>,
    /// How each mode ran.
    pub modes: Vec<ModeSummary>,
    /// Leaks and hazards: any one fails the check.
    pub findings: Vec<Finding>,
    /// Requests whose response differs between two fresh instances, and
    /// the parts left out of the comparison because of it.
    pub nondeterministic: Vec<NonDeterminism>,
    /// Requests nothing could be compared for: no response on a fresh
    /// instance, or two fresh instances that ended them differently.
    pub not_compared: usize,
    /// Observations that do not fail the check.
    pub notes: Vec<String>,
    /// Reasons to trust a pass less, e.g. that only the default probes ran.
    pub warnings: Vec<String>,
    /// Linear memory of each reused instance after each batch (one request
    /// serially, one round concurrently), in bytes.
    pub memory: Vec<MemorySeries>,
}

impl Report {
    /// No leak and no hazard was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// One line on what to do about the findings: which flag leaves out a
    /// difference that is there by design, and where the guide explains
    /// each kind. `None` when the check passed.
    pub fn hint(&self) -> Option<String> {
        let has = |kind: Kind| self.findings.iter().any(|f| f.kind == kind);
        let mut hints = Vec::new();
        if has(Kind::Leak) {
            hints.push(
                "a difference that is there by design (an instance counter, a timestamp) can be left out with --ignore-body REGEX or --ignore-header NAME (guide: check.md, \"Ignoring what is meant to differ\"); any other is state that outlives its request (guide: hazards/globals.md)",
            );
        }
        if has(Kind::Trap) {
            hints.push("a trap's finding names the guest's panic and where it happened (guide: hazards/traps.md)");
        }
        if has(Kind::Timeout) {
            hints.push("a timeout is a request left waiting on another one on its instance (guide: hazards/concurrency.md)");
        }
        if has(Kind::Memory) {
            hints.push("memory that keeps growing is something each request leaves behind (guide: hazards/memory.md)");
        }
        if has(Kind::Outgoing) {
            hints.push("check makes the component's outgoing calls for real: make the services it calls reachable (and stable) for the whole check, then run it again (guide: check.md)");
        }
        (!hints.is_empty()).then(|| hints.join("; "))
    }

    /// The report as pretty-printed JSON, led by `"verdict": "pass"` or
    /// `"fail"`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct WithVerdict<'a> {
            verdict: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            hint: Option<String>,
            #[serde(flatten)]
            report: &'a Report,
        }
        let verdict = match self.is_clean() {
            true => "pass",
            false => "fail",
        };
        // A tree of strings and numbers always serializes.
        serde_json::to_string_pretty(&WithVerdict {
            verdict,
            hint: self.hint(),
            report: self,
        })
        .unwrap_or_default()
    }
}

/// How a request sequence was run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Each request on a new instance, twice: the reference.
    Fresh,
    /// All requests one after another on one instance.
    Serial,
    /// All requests of a round in flight together on one instance.
    Concurrent,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Mode::Fresh => "fresh",
            Mode::Serial => "serial",
            Mode::Concurrent => "concurrent",
        })
    }
}

/// What one mode did.
#[derive(Debug, Serialize)]
pub struct ModeSummary {
    /// The mode summed up.
    pub mode: Mode,
    /// Requests sent.
    pub requests: usize,
    /// Instances they ran on.
    pub instances: u64,
    /// Most requests in flight on one instance at once.
    pub most_in_flight: usize,
    /// Why the mode did not run, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

/// The kinds of problems `check` reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A reused instance answered differently from a fresh one.
    Leak,
    /// A request trapped on a reused instance, not on a fresh one.
    Trap,
    /// A request finished on a fresh instance but not on a reused one.
    Timeout,
    /// Linear memory kept growing with the requests on one instance.
    Memory,
    /// A reused instance answered differently after an outgoing call
    /// failed: not judged, since the cause may be outside the instance.
    Outgoing,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Kind::Leak => "leak",
            Kind::Trap => "trap",
            Kind::Timeout => "timeout",
            Kind::Memory => "memory",
            Kind::Outgoing => "outgoing",
        })
    }
}

/// One leak or hazard.
#[derive(Debug, Serialize)]
pub struct Finding {
    /// What was found.
    pub kind: Kind,
    /// The mode that exposed it.
    pub mode: Mode,
    /// The request concerned (`METHOD /path`); none for instance-level
    /// findings (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// How many runs of the request in this mode showed it, out of
    /// `runs`.
    pub occurrences: usize,
    /// Runs of the request in this mode.
    pub runs: usize,
    /// Where it first showed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<Position>,
    /// What differed, first occurrence (leaks, traps, timeouts).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// Instance-level detail (memory).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The whole response bodies of the first occurrence, fresh and
    /// reused, as text (JSON report only; the text report shows excerpts).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fresh_body: Option<String>,
    /// The reused instance's body of the same occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reused_body: Option<String>,
}

/// Where a request ran on its reused instance.
#[derive(Debug, Serialize)]
pub struct Position {
    /// Round, from 1.
    pub round: usize,
    /// The request's position among those its instance received, from 1.
    pub on_instance: usize,
    /// The request served just before it on the same instance (serial).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Most requests in flight on the instance while it ran (concurrent).
    pub in_flight: usize,
}

/// A request that does not answer the same on two fresh instances.
#[derive(Debug, Serialize)]
pub struct NonDeterminism {
    /// The request, as `METHOD /path`.
    pub request: String,
    /// The parts left out of comparisons: `status`, `header NAME`,
    /// `body (N tokens)`, `body`, or `outcome` (nothing compared).
    pub parts: Vec<String>,
}

/// Linear memory sizes of one reused instance.
#[derive(Debug, Serialize)]
pub struct MemorySeries {
    /// The reused mode the instance served in.
    pub mode: Mode,
    /// The instance's number in the check (1, 2, 3…).
    pub instance: u64,
    /// Bytes after each batch, in order.
    pub bytes: Vec<usize>,
}

/// The text report: a header line, one line per finding, non-determinism
/// and notes, then the verdict.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let modes = self
            .modes
            .iter()
            .map(|summary| match &summary.skipped {
                Some(why) => format!("{} skipped ({why})", summary.mode),
                None if summary.mode == Mode::Fresh => {
                    format!(
                        "fresh {} on {}",
                        summary.requests,
                        plural(summary.instances, "instance")
                    )
                }
                None => {
                    let mut text = format!(
                        "{} {} on {}",
                        summary.mode,
                        summary.requests,
                        plural(summary.instances, "instance")
                    );
                    if summary.mode == Mode::Concurrent {
                        text.push_str(&format!(" (up to {} in flight)", summary.most_in_flight));
                    }
                    text
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            f,
            "check {} ({}): {}, {}, seed {}; {modes}",
            self.component,
            self.world,
            plural(self.requests.len() as u64, "request"),
            plural(self.rounds as u64, "round"),
            self.seed,
        )?;
        for finding in &self.findings {
            writeln!(f, "{finding}")?;
        }
        for entry in &self.nondeterministic {
            writeln!(
                f,
                "{:<8} {:<10} {}: differs between two fresh instances in {}; not compared",
                "varies",
                "fresh",
                entry.request,
                entry.parts.join(", ")
            )?;
        }
        for note in &self.notes {
            writeln!(f, "{:<8} {note}", "note")?;
        }
        for warning in &self.warnings {
            writeln!(f, "{:<8} {warning}", "warning")?;
        }
        if let Some(hint) = self.hint() {
            writeln!(f, "{:<8} {hint}", "hint")?;
        }
        let count = |kind: Kind| self.findings.iter().filter(|f| f.kind == kind).count();
        let (leaks, outgoing) = (count(Kind::Leak), count(Kind::Outgoing));
        let hazards = self.findings.len() - leaks - outgoing;
        let unjudged = match outgoing {
            0 => String::new(),
            n => format!(
                ", and {} that changed after a failed outgoing call",
                plural(n as u64, "answer")
            ),
        };
        match self.is_clean() {
            true if self.not_compared > 0 => writeln!(
                f,
                "PASS: no leak or hazard under reuse in {}, but {} of {} could not be compared (see the notes)",
                self.component,
                self.not_compared,
                plural(self.requests.len() as u64, "request"),
            ),
            true if !self.warnings.is_empty() => writeln!(
                f,
                "PASS: no leak or hazard under reuse in {}, with the warnings above",
                self.component
            ),
            true => writeln!(
                f,
                "PASS: no leak or hazard under reuse in {}",
                self.component
            ),
            false => writeln!(
                f,
                "FAIL: {} and {} under reuse in {}{unjudged} (rerun with --seed {})",
                plural(leaks as u64, "leak"),
                plural(hazards as u64, "hazard"),
                self.component,
                self.seed
            ),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<8} {:<10} ", self.kind, self.mode)?;
        if let Some(request) = &self.request {
            write!(f, "{request}: ")?;
        }
        let differences = self
            .differences
            .iter()
            .map(|d| format!("{}: fresh {}, reused {}", d.part, d.fresh, d.reused))
            .collect::<Vec<_>>()
            .join("; ");
        f.write_str(&differences)?;
        if let Some(detail) = &self.detail {
            f.write_str(detail)?;
        }
        if let Some(first) = &self.first {
            write!(
                f,
                " ({} of {}; first in round {}, request {} on its instance",
                self.occurrences,
                plural(self.runs as u64, "run"),
                first.round,
                first.on_instance
            )?;
            match (&first.after, self.mode) {
                (Some(after), _) => write!(f, ", after {after})")?,
                (None, Mode::Concurrent) => write!(f, ", {} in flight)", first.in_flight)?,
                (None, _) => f.write_str(")")?,
            }
        }
        Ok(())
    }
}

fn plural(count: u64, noun: &str) -> String {
    match count {
        1 => format!("1 {noun}"),
        _ => format!("{count} {noun}s"),
    }
}
