//! Comparing what a reused instance answered with what a fresh one did.
//!
//! Responses are first made comparable: ignored headers dropped, ignored
//! body patterns blanked, the body cut into tokens (runs of letters and
//! digits, and single other characters). Two fresh answers to the same
//! request then give a [`Mask`]: whatever differs between them (a header, a
//! status, body tokens at the same position, or the whole body when their
//! shapes differ) is non-determinism, and is not compared again. What is
//! left must match exactly.
//!
//! This module does not decide what a difference means (leak, trap,
//! timeout); the check module does.

use std::collections::{BTreeMap, BTreeSet};

use regex_lite::Regex;
use serde::Serialize;

use super::body::{BLOCK_BYTES, LongBody};
use super::driver::Outcome;

/// What replaces a body part matched by an ignore pattern.
const IGNORED: &str = "<ignored>";

/// Characters of context shown on each side of a body difference.
const CONTEXT_CHARS: usize = 24;

/// The ignore lists, compiled.
pub(crate) struct Ignore {
    /// Lower-case names; a trailing `*` matches any name with that prefix.
    headers: Vec<String>,
    body: Vec<Regex>,
}

impl Ignore {
    pub(crate) fn new(headers: &[String], body: &[Regex]) -> Self {
        Self {
            headers: headers.iter().map(|h| h.to_ascii_lowercase()).collect(),
            body: body.to_vec(),
        }
    }

    fn ignores_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }

    /// `outcome` in comparable form.
    pub(crate) fn comparable(&self, outcome: &Outcome) -> Comparable {
        let Outcome::Response {
            status,
            headers,
            body,
            long,
        } = outcome
        else {
            return Comparable::Other(outcome.clone());
        };
        let mut kept = BTreeMap::<String, String>::new();
        for (name, value) in headers {
            if self.ignores_header(name) {
                continue;
            }
            kept.entry(name.clone())
                .and_modify(|joined| {
                    joined.push_str(", ");
                    joined.push_str(value);
                })
                .or_insert_with(|| value.clone());
        }
        let body = match std::str::from_utf8(body) {
            Ok(text) => {
                let mut text = text.to_owned();
                for pattern in &self.body {
                    text = pattern.replace_all(&text, IGNORED).into_owned();
                }
                Body::Text(tokens(&text))
            }
            Err(_) => Body::Binary(body.clone()),
        };
        let body = match long {
            Some(long) => Body::Long(Box::new(body), long.clone()),
            None => body,
        };
        Comparable::Response {
            status: *status,
            headers: kept,
            body,
        }
    }
}

/// A response with the ignored parts gone, or a request that got none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Comparable {
    Response {
        status: u16,
        headers: BTreeMap<String, String>,
        body: Body,
    },
    Other(Outcome),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Body {
    Text(Vec<String>),
    Binary(Vec<u8>),
    /// A body over `KEPT_BODY_BYTES`: its first bytes, and the whole of it
    /// summed up.
    Long(Box<Body>, LongBody),
}

/// Splits text into runs of alphanumerics and single other characters, so
/// that a random id or a timestamp is one token and its neighbours stay
/// comparable.
fn tokens(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    let mut in_word = false;
    for c in text.chars() {
        let word = c.is_alphanumeric();
        match tokens.last_mut() {
            Some(last) if word && in_word => last.push(c),
            _ => tokens.push(c.to_string()),
        }
        in_word = word;
    }
    tokens
}

/// The parts of one request's response that differ between two fresh
/// instances.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Mask {
    /// The two fresh runs did not even end the same way.
    everything: bool,
    status: bool,
    headers: BTreeSet<String>,
    body: BodyMask,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum BodyMask {
    #[default]
    Nothing,
    Tokens(BTreeSet<usize>),
    Whole,
}

impl Mask {
    /// What differs between `a` and `b`, two fresh answers to one request.
    pub(crate) fn learn(a: &Comparable, b: &Comparable) -> Self {
        let (
            Comparable::Response {
                status: status_a,
                headers: headers_a,
                body: body_a,
            },
            Comparable::Response {
                status: status_b,
                headers: headers_b,
                body: body_b,
            },
        ) = (a, b)
        else {
            return Mask {
                everything: a != b,
                ..Mask::default()
            };
        };
        let names: BTreeSet<&String> = headers_a.keys().chain(headers_b.keys()).collect();
        let body = match (body_a, body_b) {
            (Body::Text(a), Body::Text(b)) if a.len() == b.len() => {
                let positions: BTreeSet<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
                match positions.is_empty() {
                    true => BodyMask::Nothing,
                    false => BodyMask::Tokens(positions),
                }
            }
            (a, b) if a == b => BodyMask::Nothing,
            _ => BodyMask::Whole,
        };
        Mask {
            everything: false,
            status: status_a != status_b,
            headers: names
                .into_iter()
                .filter(|&name| headers_a.get(name) != headers_b.get(name))
                .cloned()
                .collect(),
            body,
        }
    }

    /// Nothing differed between the fresh runs.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Mask::default()
    }

    /// The fresh runs differ in how they end: nothing can be compared.
    pub(crate) fn covers_everything(&self) -> bool {
        self.everything
    }

    /// The masked parts, for the report: `status`, `header etag`, `body`.
    pub(crate) fn parts(&self) -> Vec<String> {
        if self.everything {
            return vec!["outcome".to_owned()];
        }
        let mut parts = Vec::new();
        if self.status {
            parts.push("status".to_owned());
        }
        parts.extend(self.headers.iter().map(|name| format!("header {name}")));
        match &self.body {
            BodyMask::Nothing => {}
            BodyMask::Tokens(positions) => parts.push(format!(
                "body ({} token{})",
                positions.len(),
                if positions.len() == 1 { "" } else { "s" }
            )),
            BodyMask::Whole => parts.push("body".to_owned()),
        }
        parts
    }
}

/// One difference between a fresh and a reused answer, shown briefly.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// `status`, `header NAME`, `body` or `outcome`.
    pub part: String,
    /// What a fresh instance answered (an excerpt for bodies).
    pub fresh: String,
    /// What the reused instance answered.
    pub reused: String,
}

/// How `reused` differs from `fresh`, outside `mask`; empty when it does not.
pub(crate) fn differences(fresh: &Comparable, reused: &Comparable, mask: &Mask) -> Vec<Difference> {
    if mask.everything {
        return Vec::new();
    }
    let (
        Comparable::Response {
            status: fresh_status,
            headers: fresh_headers,
            body: fresh_body,
        },
        Comparable::Response {
            status: reused_status,
            headers: reused_headers,
            body: reused_body,
        },
    ) = (fresh, reused)
    else {
        return match fresh == reused {
            true => Vec::new(),
            false => vec![Difference {
                part: "outcome".to_owned(),
                fresh: describe(fresh),
                reused: describe(reused),
            }],
        };
    };
    let mut found = Vec::new();
    if !mask.status && fresh_status != reused_status {
        found.push(Difference {
            part: "status".to_owned(),
            fresh: fresh_status.to_string(),
            reused: reused_status.to_string(),
        });
    }
    let names: BTreeSet<&String> = fresh_headers.keys().chain(reused_headers.keys()).collect();
    for name in names {
        let (fresh_value, reused_value) = (fresh_headers.get(name), reused_headers.get(name));
        if !mask.headers.contains(name) && fresh_value != reused_value {
            let show = |value: Option<&String>| value.map_or("(absent)".to_owned(), |v| quoted(v));
            found.push(Difference {
                part: format!("header {name}"),
                fresh: show(fresh_value),
                reused: show(reused_value),
            });
        }
    }
    if let Some((fresh, reused)) = body_difference(fresh_body, reused_body, &mask.body) {
        found.push(Difference {
            part: "body".to_owned(),
            fresh,
            reused,
        });
    }
    found
}

/// Excerpts of both bodies around their first difference outside the mask.
fn body_difference(fresh: &Body, reused: &Body, mask: &BodyMask) -> Option<(String, String)> {
    let (fresh, reused) = match (fresh, reused) {
        _ if *mask == BodyMask::Whole => return None,
        (Body::Text(fresh), Body::Text(reused)) => (fresh, reused),
        (a, b) if a == b => return None,
        (Body::Long(fresh_kept, fresh_long), Body::Long(reused_kept, reused_long)) => {
            if fresh_kept != reused_kept {
                return body_difference(fresh_kept, reused_kept, &BodyMask::Nothing);
            }
            return Some(long_difference(fresh_long, reused_long));
        }
        (a, b) => return Some((describe_body(a), describe_body(b))),
    };
    let masked = |i: usize| matches!(mask, BodyMask::Tokens(positions) if positions.contains(&i));
    let at = (0..fresh.len().max(reused.len()))
        .find(|&i| !masked(i) && fresh.get(i) != reused.get(i))?;
    Some((excerpt(fresh, at), excerpt(reused, at)))
}

/// The tokens around position `at`, quoted, with `…` where text was cut.
fn excerpt(tokens: &[String], at: usize) -> String {
    let mut before = String::new();
    let mut start = at.min(tokens.len());
    while start > 0 && before.chars().count() < CONTEXT_CHARS {
        start -= 1;
        before.insert_str(0, &tokens[start]);
    }
    let mut after = String::new();
    let mut end = at;
    while end < tokens.len() && after.chars().count() < CONTEXT_CHARS {
        after.push_str(&tokens[end]);
        end += 1;
    }
    let text = shorten(&(before + &after), 2 * CONTEXT_CHARS + 16);
    let mut shown = quoted(&text);
    if start > 0 {
        shown.insert(0, '…');
    }
    if end < tokens.len() {
        shown.push('…');
    }
    if tokens.is_empty() {
        shown = "(empty body)".to_owned();
    }
    shown
}

fn shorten(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Rust's debug quoting: one line, escapes visible.
fn quoted(text: &str) -> String {
    format!("{text:?}")
}

/// Two long bodies whose first bytes are the same: where they first differ.
fn long_difference(fresh: &LongBody, reused: &LongBody) -> (String, String) {
    let first = (fresh.blocks.iter().zip(&reused.blocks))
        .position(|(a, b)| a != b)
        .unwrap_or(fresh.blocks.len().min(reused.blocks.len()));
    let at = format!(
        "first differs in bytes {}..{} (compared by SHA-256 per MiB)",
        first * BLOCK_BYTES,
        (first + 1) * BLOCK_BYTES
    );
    let show = |long: &LongBody| format!("{} bytes, {at}", long.len);
    (show(fresh), show(reused))
}

fn describe_body(body: &Body) -> String {
    match body {
        Body::Long(_, long) => format!("{} bytes", long.len),
        Body::Text(tokens) => quoted(&shorten(&tokens.concat(), 2 * CONTEXT_CHARS)),
        Body::Binary(bytes) => format!("{} bytes of binary", bytes.len()),
    }
}

fn describe(comparable: &Comparable) -> String {
    match comparable {
        Comparable::Response { status, .. } => format!("a {status} response"),
        Comparable::Other(Outcome::Trap(message)) => message.clone(),
        Comparable::Other(Outcome::Timeout) => "no response in time".to_owned(),
        Comparable::Other(Outcome::Failed(message)) => format!("failure: {message}"),
        Comparable::Other(Outcome::Response { status, .. }) => format!("a {status} response"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Outcome {
        Outcome::Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            long: None,
        }
    }

    fn ignore(headers: &[&str], body: &[&str]) -> Ignore {
        Ignore::new(
            &headers.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            &body
                .iter()
                .map(|p| Regex::new(p).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn long_bodies_that_differ_past_their_first_bytes_name_the_mib_where_they_do() {
        let long = |blocks: [[u8; 32]; 3]| Outcome::Response {
            status: 200,
            headers: Vec::new(),
            body: b"same start".to_vec(),
            long: Some(LongBody {
                len: 3 * BLOCK_BYTES as u64,
                blocks: blocks.to_vec(),
            }),
        };
        let ignore = ignore(&[], &[]);
        let fresh = ignore.comparable(&long([[0; 32], [1; 32], [2; 32]]));
        let reused = ignore.comparable(&long([[0; 32], [9; 32], [2; 32]]));
        assert!(differences(&fresh, &fresh, &Mask::default()).is_empty());
        let found = differences(&fresh, &reused, &Mask::default());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0]
                .fresh
                .contains("first differs in bytes 1048576..2097152"),
            "{found:?}"
        );
    }

    #[test]
    fn a_changed_body_token_is_shown_in_context() {
        let ignore = ignore(&[], &[]);
        let fresh = ignore.comparable(&response(200, &[], "you are visitor 1\n"));
        let reused = ignore.comparable(&response(200, &[], "you are visitor 2\n"));
        let mask = Mask::learn(&fresh, &fresh);
        assert!(mask.is_empty());
        assert_eq!(
            differences(&fresh, &reused, &mask),
            vec![Difference {
                part: "body".into(),
                fresh: "\"you are visitor 1\\n\"".into(),
                reused: "\"you are visitor 2\\n\"".into(),
            }]
        );
    }

    #[test]
    fn what_differs_between_fresh_instances_is_not_compared() {
        let ignore = ignore(&[], &[]);
        let a = ignore.comparable(&response(200, &[("etag", "1")], "id=7f3a count=1"));
        let b = ignore.comparable(&response(200, &[("etag", "2")], "id=19c0 count=1"));
        let mask = Mask::learn(&a, &b);
        assert_eq!(mask.parts(), ["header etag", "body (1 token)"]);
        let same_count = ignore.comparable(&response(200, &[("etag", "3")], "id=0000 count=1"));
        assert!(differences(&a, &same_count, &mask).is_empty());
        let leaked = ignore.comparable(&response(200, &[("etag", "3")], "id=0000 count=2"));
        assert_eq!(differences(&a, &leaked, &mask).len(), 1);
    }

    #[test]
    fn ignored_headers_and_body_patterns_are_left_out() {
        let ignore = ignore(&["date", "x-reprise-*"], &[r"served=\d+"]);
        let fresh = ignore.comparable(&response(
            200,
            &[("date", "a"), ("x-reprise-instance", "1")],
            "ok served=1",
        ));
        let reused = ignore.comparable(&response(
            200,
            &[("date", "b"), ("x-reprise-instance", "2")],
            "ok served=9",
        ));
        assert_eq!(fresh, reused);
    }

    #[test]
    fn a_trap_differs_from_a_response() {
        let ignore = ignore(&[], &[]);
        let fresh = ignore.comparable(&response(200, &[], "ok"));
        let reused = ignore.comparable(&Outcome::Trap("wasm trap: unreachable".into()));
        let found = differences(&fresh, &reused, &Mask::default());
        assert_eq!(found[0].part, "outcome");
        assert_eq!(found[0].fresh, "a 200 response");
        assert_eq!(found[0].reused, "wasm trap: unreachable");
    }
}
