//! Which hosts a component may send HTTP requests to (`--allow-outbound`,
//! `--deny-outbound`), and the `wasi:http` hooks that hold p2 and p3 guests
//! to it.
//!
//! The default is any host, as with `wasmtime serve`, so that switching
//! hosts changes nothing; an operator narrows it. A refused request fails in
//! the guest with `wasi:http`'s `HTTP-request-denied` error and never
//! reaches the network. Hosts are matched by name as the guest wrote them in
//! the URL (`localhost` and `127.0.0.1` are different rules): nothing is
//! resolved, so an allowed name is exactly what the guest may connect to.
//!
//! The hooks also consult the optional [`Exchanges`] of `--record` and of
//! `check`'s replay (the `exchange` module), and, for `check`, log a call
//! cancelled before its answer came (by the app's own deadline or the
//! host's) beside the calls that failed.
//!
//! This module does not govern `wasi:sockets`: host-runner grants guests no
//! socket addresses at all, so outgoing HTTP is the only way out.

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use hyper::Uri;
use hyper::http::uri::Scheme;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use crate::exchange::Exchanges;

/// Which hosts outgoing HTTP requests may go to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum OutboundPolicy {
    /// Any host and port (the default, as in `wasmtime serve`).
    #[default]
    Any,
    /// No outgoing requests at all (`--deny-outbound`).
    Deny,
    /// Only hosts matching one of these (`--allow-outbound`, repeatable).
    Allow(Vec<OutboundRule>),
}

/// One `--allow-outbound` value: `HOST`, `HOST:PORT`, `*` or `*:PORT`;
/// IPv6 addresses in brackets (`[::1]:8080`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboundRule {
    /// Lower-cased host name or address, without brackets; `None` for `*`.
    host: Option<String>,
    /// `None`: any port.
    port: Option<u16>,
}

impl OutboundPolicy {
    /// The policy the flags ask for: `deny` wins over nothing, and an empty
    /// allow-list leaves the default (any host).
    pub fn from_flags(allow: Vec<OutboundRule>, deny: bool) -> Self {
        match (deny, allow.is_empty()) {
            (true, _) => OutboundPolicy::Deny,
            (false, true) => OutboundPolicy::Any,
            (false, false) => OutboundPolicy::Allow(allow),
        }
    }

    /// Whether a request to `uri` may be sent; a URI without a host is left
    /// to `wasi:http` to refuse as invalid.
    pub fn allows(&self, uri: &Uri) -> bool {
        let rules = match self {
            OutboundPolicy::Any => return true,
            OutboundPolicy::Deny => return false,
            OutboundPolicy::Allow(rules) => rules,
        };
        let Some(host) = uri.host() else {
            return false;
        };
        let host = unbracket(host).to_ascii_lowercase();
        let port = uri.port_u16().unwrap_or(match uri.scheme() {
            Some(scheme) if *scheme == Scheme::HTTP => 80,
            _ => 443,
        });
        rules.iter().any(|rule| {
            rule.host.as_ref().is_none_or(|allowed| *allowed == host)
                && rule.port.is_none_or(|allowed| allowed == port)
        })
    }
}

impl fmt::Display for OutboundPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutboundPolicy::Any => f.write_str("outbound HTTP to any host"),
            OutboundPolicy::Deny => f.write_str("no outbound HTTP (--deny-outbound)"),
            OutboundPolicy::Allow(rules) => {
                f.write_str("outbound HTTP only to ")?;
                for (i, rule) in rules.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{rule}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            None => f.write_str("*")?,
            Some(host) if host.contains(':') => write!(f, "[{host}]")?,
            Some(host) => f.write_str(host)?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl FromStr for OutboundRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let invalid = || {
            format!(
                "invalid outbound host `{text}`: expected HOST, HOST:PORT, [IPv6]:PORT or * (any host), e.g. 127.0.0.1:8080"
            )
        };
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, after) = rest.split_once(']').ok_or_else(invalid)?;
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').ok_or_else(invalid)?)),
                }
            }
            None => match text.rsplit_once(':') {
                // A bare IPv6 address has several colons and no port.
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                _ => (text, None),
            },
        };
        let port = match port {
            Some(port) => Some(port.parse::<u16>().map_err(|_| invalid())?),
            None => None,
        };
        let host = match host {
            "*" => None,
            "" => return Err(invalid()),
            host if host.contains(['/', '@', ' ']) => return Err(invalid()),
            host => Some(host.to_ascii_lowercase()),
        };
        Ok(OutboundRule { host, port })
    }
}

fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The `wasi:http` hooks of one instance: the outbound policy, the p2
/// outgoing-body buffering set with `-S`, where calls are recorded or
/// answered from, and, for `check`, a log of the calls that failed.
pub(crate) struct HttpHooks {
    pub(crate) policy: OutboundPolicy,
    pub(crate) p2_outgoing_body_buffer_chunks: Option<usize>,
    pub(crate) p2_outgoing_body_chunk_size: Option<usize>,
    pub(crate) exchanges: Option<Exchanges>,
    pub(crate) failed_calls: Option<Arc<FailedCalls>>,
    /// The server's keep-alive connections; `None` (`check`): a new
    /// connection per request.
    pub(crate) pool: Option<Arc<crate::pool::Pool>>,
}

/// Outgoing calls that failed, one line each (`GET http://…: connection
/// refused`), kept so that `check` can tell a response that differs because
/// a call failed from one that differs because of a leak. The server keeps
/// none: the guest itself hears of the failure and answers for it.
#[derive(Default)]
pub(crate) struct FailedCalls(Mutex<Vec<String>>);

impl FailedCalls {
    fn record(&self, call: &str, error: &dyn fmt::Display) {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        calls.push(format!("{call}: {error}"));
    }

    /// The failures since the last call, oldest first.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    hyper::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// Logs a call whose future is dropped before its answer came: the app's
/// own deadline or the host's cancelled it. A failure outside the instance,
/// as a refused call is, so `check` does not take its answer for a leak.
struct Unanswered(Option<(Arc<FailedCalls>, String)>);

impl Unanswered {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some((log, call)) = &self.0 {
            log.record(
                call,
                &"cancelled before its answer came (by the app's own deadline or the host's)",
            );
        }
    }
}

impl WasiHttpHooks for HttpHooks {
    fn send_request(
        &mut self,
        mut request: hyper::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        _ = fut;
        // Named only when someone keeps the failures: the server does not.
        let failed: Option<(Arc<FailedCalls>, String)> = self
            .failed_calls
            .clone()
            .map(|log| (log, format!("{} {}", request.method(), request.uri())));
        let cancelled = failed.clone();
        let fail = move |error: Error| {
            if let Some((log, call)) = &failed {
                log.record(call, &error);
            }
            error
        };
        if !self.policy.allows(request.uri()) {
            tracing::debug!(
                "outbound HTTP to {} refused: {}",
                request.uri(),
                self.policy
            );
            return Box::new(async move { Err(fail(Error::HttpRequestDenied)) });
        }
        crate::hop_by_hop::remove(request.headers_mut());
        let unanswered = Unanswered(cancelled);
        let exchanges = self.exchanges.clone();
        let pool = self.pool.clone();
        Box::new(async move {
            let sent = crate::exchange::send(exchanges, pool, request, options).await;
            unanswered.answered();
            let (mut response, io) = sent.map_err(&fail)?;
            crate::hop_by_hop::remove(response.headers_mut());
            let io = async move { Box::into_pin(io).await.map_err(fail) };
            Ok((response, Box::new(io) as Box<dyn Future<Output = _> + Send>))
        })
    }

    fn p2_outgoing_body_buffer_chunks(&mut self) -> usize {
        self.p2_outgoing_body_buffer_chunks
            .unwrap_or(wasmtime_wasi_http::p2::DEFAULT_OUTGOING_BODY_BUFFER_CHUNKS)
    }

    fn p2_outgoing_body_chunk_size(&mut self) -> usize {
        self.p2_outgoing_body_chunk_size
            .unwrap_or(wasmtime_wasi_http::p2::DEFAULT_OUTGOING_BODY_CHUNK_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &[&str]) -> OutboundPolicy {
        let rules = rules.iter().map(|r| r.parse().expect("a valid rule"));
        OutboundPolicy::from_flags(rules.collect(), false)
    }

    fn allows(policy: &OutboundPolicy, uri: &str) -> bool {
        policy.allows(&uri.parse().expect("a valid URI"))
    }

    #[test]
    fn a_rule_without_a_port_allows_every_port_of_that_host_only() {
        let policy = policy(&["127.0.0.1"]);
        assert!(allows(&policy, "http://127.0.0.1:9/"));
        assert!(allows(&policy, "http://127.0.0.1/"));
        assert!(!allows(&policy, "http://127.0.0.2:9/"));
        assert!(!allows(&policy, "http://localhost:9/"));
    }

    #[test]
    fn a_rule_with_a_port_allows_that_port_only_and_default_ports_count() {
        let policy = policy(&["localhost:8080", "LocalHost:443", "[::1]:80"]);
        assert!(allows(&policy, "http://LOCALHOST:8080/x"));
        assert!(!allows(&policy, "http://localhost:8081/x"));
        assert!(allows(&policy, "https://localhost/"));
        assert!(!allows(&policy, "http://localhost/"));
        assert!(allows(&policy, "http://[::1]/"));
    }

    #[test]
    fn star_allows_any_host_and_deny_allows_none() {
        assert!(allows(&policy(&["*"]), "http://127.0.0.9:1/"));
        assert!(allows(&policy(&["*:8080"]), "http://127.0.0.9:8080/"));
        assert!(!allows(&policy(&["*:8080"]), "http://127.0.0.9:8081/"));
        let deny = OutboundPolicy::from_flags(Vec::new(), true);
        assert!(!allows(&deny, "http://127.0.0.1/"));
        assert!(allows(&OutboundPolicy::default(), "http://127.0.0.1/"));
    }

    #[test]
    fn malformed_rules_are_refused_with_an_example() {
        for bad in [
            "",
            "host:port",
            "http://127.0.0.1",
            "[::1",
            "a:99999",
            "a b",
        ] {
            let error = bad.parse::<OutboundRule>().expect_err(bad);
            assert!(error.contains("e.g. 127.0.0.1:8080"), "{error}");
        }
        assert_eq!(
            "[::1]:8080".parse::<OutboundRule>().map(|r| r.to_string()),
            Ok("[::1]:8080".to_owned())
        );
    }
}
