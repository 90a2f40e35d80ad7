//! What is measured: every configuration (server, component, flags) and the
//! load each one gets.
//!
//! This is the single list the run, the table, the ratios and the chart all
//! read from. It does not start anything.

use std::fmt;

/// The server program under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    HostRunner,
    /// `wasmtime serve` 48.0.8, the reference host.
    Wasmtime,
    /// `reprise-bench native`: hyper with no WebAssembly.
    Native,
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ServerKind::HostRunner => "host-runner",
            ServerKind::Wasmtime => "wasmtime serve",
            ServerKind::Native => "native hyper",
        })
    }
}

/// The two workloads, measured under different loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `Hello, WASI!`: CPU-bound, per-request overhead is everything.
    Hello,
    /// `sleep-p3?ms=40` at 200 connections: how reuse saves instances when
    /// requests wait.
    IoBound,
    /// `proxy-p3` in front of a backend that answers after 40 ms, at 200
    /// connections: the real I/O-bound case, a call out per request.
    Proxy,
    /// `axum-p3`'s `/echo`: a body of [`Load::post_bytes`] up and the same
    /// back, streamed through the component.
    Echo,
}

/// How a configuration reuses instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// The host's default (p2: 128 requests per instance, one at a time).
    On,
    /// One request at a time, many per instance.
    Serial,
    /// One request per instance.
    Off,
    /// No instances at all (native).
    NotApplicable,
}

impl fmt::Display for Reuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reuse::On => "reuse",
            Reuse::Serial => "serial reuse",
            Reuse::Off => "no reuse",
            Reuse::NotApplicable => "-",
        })
    }
}

/// The wrk load for a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    pub threads: u32,
    pub connections: u32,
    /// Path and query requested.
    pub path: &'static str,
    /// POST a body of this many bytes instead of a GET.
    pub post_bytes: Option<u32>,
}

/// Enough concurrency to keep both cores busy and several requests in
/// flight per p3 instance, little enough that queueing does not dominate
/// latency.
const HELLO_LOAD: Load = Load {
    threads: 2,
    connections: 32,
    path: "/",
    post_bytes: None,
};

/// The I/O-bound case: 200 connections, each request waiting 40 ms.
const IO_LOAD: Load = Load {
    threads: 2,
    connections: 200,
    path: "/?ms=40",
    post_bytes: None,
};

/// The proxy's load: the same 200 connections, each request forwarded to
/// a backend that answers after [`BACKEND_DELAY_MS`].
const PROXY_LOAD: Load = Load {
    threads: 2,
    connections: 200,
    path: "/",
    post_bytes: None,
};

/// How long the proxy rows' backend (`reprise-bench native --delay-ms`)
/// takes to answer.
pub const BACKEND_DELAY_MS: u64 = 40;

/// The hello components of one world, each answering the same
/// `Hello, WASI!`: with reprise, on the raw bindings, and with another SDK
/// from crates.io.
#[derive(Clone, Copy, Debug)]
pub struct Hellos {
    pub reprise: &'static str,
    /// On the raw bindings, reading nothing of the request.
    pub raw: &'static str,
    /// On the raw bindings, reading the request head first as any SDK must
    /// (bench/sdks): the baseline of the SDK's own cost.
    pub raw_head: Option<&'static str>,
    /// Built by `bench/sdks` (its own workspace and lock file), not by
    /// `just build`.
    pub other: &'static str,
    /// What `other` is built with, for the report.
    pub other_sdk: &'static str,
}

impl Hellos {
    pub fn all(&self) -> Vec<&'static str> {
        [
            Some(self.reprise),
            Some(self.raw),
            self.raw_head,
            Some(self.other),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The hellos of both worlds.
pub const HELLOS: [Hellos; 2] = [
    Hellos {
        reprise: "hello-p3",
        raw: "raw-hello-p3",
        raw_head: None,
        other: "spin-hello-p3",
        other_sdk: "spin-sdk 7.0.0",
    },
    Hellos {
        reprise: "hello-p2",
        raw: "raw-hello-p2",
        raw_head: Some("raw-head-hello-p2"),
        other: "wstd-hello-p2",
        other_sdk: "wstd 0.6.8",
    },
];

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerKind,
    /// Sample name as in `guests/` and `test-guests/` (e.g. `hello-p3`);
    /// `None` for the native server.
    pub component: Option<&'static str>,
    pub reuse: Reuse,
    /// Server flags beyond the address and the component.
    pub flags: Vec<&'static str>,
    pub workload: Workload,
    pub load: Load,
    /// What sets this row apart from the row of the same server, component
    /// and reuse (e.g. `no pool`), in its label; `None` for that row.
    pub variant: Option<&'static str>,
}

impl Config {
    /// A label unique within the plan, e.g. `host-runner hello-p3 reuse`.
    pub fn label(&self) -> String {
        match self.component {
            Some(component) => {
                let variant = self.variant.map(|v| format!(" {v}")).unwrap_or_default();
                format!("{} {component} {}{variant}", self.server, self.reuse)
            }
            None => self.server.to_string(),
        }
    }

    /// The component's file, relative to the guests' directory, as cargo
    /// builds it: samples at its top, `test-guests` components (the raw
    /// baselines) in its `examples/`.
    pub fn wasm_file(&self) -> Option<String> {
        self.component.map(|component| {
            let file = format!("{}.wasm", component.replace('-', "_"));
            if component.starts_with("raw-hello-") {
                format!("examples/{file}")
            } else {
                file
            }
        })
    }
}

/// Every configuration, in table order.
pub fn all() -> Vec<Config> {
    let mut plan = Vec::new();
    for server in [ServerKind::HostRunner, ServerKind::Wasmtime] {
        for component in HELLOS.iter().flat_map(Hellos::all) {
            for reuse in [Reuse::On, Reuse::Off] {
                plan.push(hello(server, component, reuse));
            }
        }
    }
    plan.push(Config {
        server: ServerKind::Native,
        component: None,
        reuse: Reuse::NotApplicable,
        flags: Vec::new(),
        workload: Workload::Hello,
        load: HELLO_LOAD,
        variant: None,
    });
    for reuse in [Reuse::On, Reuse::Serial, Reuse::Off] {
        plan.push(Config {
            server: ServerKind::HostRunner,
            component: Some("sleep-p3"),
            reuse,
            flags: reuse_flags("sleep-p3", reuse),
            workload: Workload::IoBound,
            load: IO_LOAD,
            variant: None,
        });
    }
    for server in [ServerKind::HostRunner, ServerKind::Wasmtime] {
        for reuse in [Reuse::On, Reuse::Serial, Reuse::Off] {
            plan.push(Config {
                server,
                component: Some("proxy-p3"),
                reuse,
                flags: reuse_flags("proxy-p3", reuse),
                workload: Workload::Proxy,
                load: PROXY_LOAD,
                variant: None,
            });
        }
    }
    // host-runner's proxy with outbound connections not kept (one per
    // call, as `wasmtime serve` does): what the pool saves.
    let mut flags = reuse_flags("proxy-p3", Reuse::On);
    flags.push("--outbound-idle-timeout=0");
    plan.push(Config {
        server: ServerKind::HostRunner,
        component: Some("proxy-p3"),
        reuse: Reuse::On,
        flags,
        workload: Workload::Proxy,
        load: PROXY_LOAD,
        variant: Some("no pool"),
    });
    plan.extend(scaling());
    plan
}

/// Cost as work grows: connections 16 → 256, bodies of 1 KiB to 1 MiB both
/// ways, memory per live instance, and one serving thread against two.
fn scaling() -> Vec<Config> {
    let mut plan = Vec::new();
    for server in [ServerKind::HostRunner, ServerKind::Wasmtime] {
        for (connections, variant) in CONNECTIONS {
            plan.push(Config {
                load: Load {
                    connections,
                    ..HELLO_LOAD
                },
                variant: Some(variant),
                ..hello(server, "hello-p3", Reuse::On)
            });
        }
    }
    for server in [ServerKind::HostRunner, ServerKind::Wasmtime] {
        for (bytes, variant) in BODIES {
            plan.push(Config {
                server,
                component: Some("axum-p3"),
                reuse: Reuse::On,
                flags: reuse_flags("axum-p3", Reuse::On),
                workload: Workload::Echo,
                load: Load {
                    post_bytes: Some(bytes),
                    ..ECHO_LOAD
                },
                variant: Some(variant),
            });
        }
    }
    // Against the 200-connection serial row of the I/O-bound rows: one
    // instance live against about 200, for memory per live instance.
    plan.push(Config {
        server: ServerKind::HostRunner,
        component: Some("sleep-p3"),
        reuse: Reuse::Serial,
        flags: reuse_flags("sleep-p3", Reuse::Serial),
        workload: Workload::IoBound,
        load: Load {
            threads: 1,
            connections: 1,
            ..IO_LOAD
        },
        variant: Some(ONE_CONNECTION),
    });
    for (flag, variant) in THREADS {
        let mut config = hello(ServerKind::HostRunner, "hello-p3", Reuse::On);
        config.flags.push(flag);
        config.variant = Some(variant);
        plan.push(config);
    }
    plan
}

/// The connection counts of the scaling rows (hello-p3), and their labels.
pub const CONNECTIONS: [(u32, &str); 2] = [(16, "16 connections"), (256, "256 connections")];

/// The body sizes of the echo rows, and their labels.
pub const BODIES: [(u32, &str); 3] = [
    (1024, "1 KiB body"),
    (64 * 1024, "64 KiB body"),
    (1024 * 1024, "1 MiB body"),
];

/// host-runner's serving threads in the thread rows (hello-p3), and their
/// labels.
pub const THREADS: [(&str, &str); 2] = [("--threads=1", "1 thread"), ("--threads=2", "2 threads")];

/// The label of the I/O-bound row with one connection (one live instance).
pub const ONE_CONNECTION: &str = "1 connection";

/// The echo rows' load: few enough connections that 1 MiB each both ways
/// stays well inside memory, enough to keep both cores busy.
const ECHO_LOAD: Load = Load {
    threads: 2,
    connections: 16,
    path: "/echo",
    post_bytes: None,
};

fn hello(server: ServerKind, component: &'static str, reuse: Reuse) -> Config {
    Config {
        server,
        component: Some(component),
        reuse,
        flags: reuse_flags(component, reuse),
        workload: Workload::Hello,
        load: HELLO_LOAD,
        variant: None,
    }
}

/// The flags that give `reuse`, the same for host-runner and `wasmtime
/// serve` (host-runner's flags are named after `wasmtime serve`'s).
fn reuse_flags(component: &str, reuse: Reuse) -> Vec<&'static str> {
    match reuse {
        // p2 does not reuse by default; 128 matches p3's default count.
        Reuse::On if component.ends_with("-p2") => vec!["--max-instance-reuse-count=128"],
        Reuse::On | Reuse::NotApplicable => Vec::new(),
        Reuse::Serial => vec!["--max-instance-concurrent-reuse-count=1"],
        Reuse::Off => vec!["--max-instance-reuse-count=1"],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_unique() {
        let plan = all();
        let mut labels: Vec<_> = plan.iter().map(Config::label).collect();
        labels.sort();
        labels.dedup();
        assert_eq!(labels.len(), plan.len());
    }

    #[test]
    fn p2_reuse_is_asked_for_explicitly_and_p3_uses_the_default() {
        assert_eq!(
            reuse_flags("hello-p2", Reuse::On),
            ["--max-instance-reuse-count=128"]
        );
        assert!(reuse_flags("hello-p3", Reuse::On).is_empty());
        assert_eq!(
            reuse_flags("hello-p3", Reuse::Off),
            ["--max-instance-reuse-count=1"]
        );
    }

    #[test]
    fn component_files_are_named_as_cargo_builds_them() {
        assert_eq!(
            hello(ServerKind::HostRunner, "raw-hello-p3", Reuse::On)
                .wasm_file()
                .as_deref(),
            Some("examples/raw_hello_p3.wasm")
        );
        assert_eq!(
            hello(ServerKind::HostRunner, "hello-p3", Reuse::On)
                .wasm_file()
                .as_deref(),
            Some("hello_p3.wasm")
        );
    }
}
