//! `wasmtime serve`'s own spellings, read into host-runner's options, so a
//! script written for one host runs the other unchanged: `-S`/`--wasi` and
//! `-W`/`--wasm` lists (`KEY[=VALUE][,KEY[=VALUE]...]`), `--header NAME:
//! VALUE` and `--header @FILE`, and `--env NAME` for a variable the host may
//! not have.
//!
//! A `-S` or `-W` key that host-runner does not implement (wasmtime 48.0.8
//! has some forty of each) is refused with one line naming it: nothing is
//! silently ignored. This module only parses; what the options do is decided
//! in `instance/config.rs` and the host.

use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};

use super::{RequestHeaders, WasiOptions};
use crate::units::{parse_duration, parse_size};

/// The `-S` keys host-runner accepts, as its refusals list them.
const WASI_KEYS: &str = "cli, http, p3, config, config-var=KEY=VALUE, keyvalue, keyvalue-in-memory-data=KEY=VALUE, keyvalue-in-memory, keyvalue-path=PATH, keyvalue-redis=URL, keyvalue-max-bytes=SIZE, keyvalue-max-keys=N, http-outgoing-body-buffer-chunks=N, http-outgoing-body-chunk-size=N";

/// The `-W` keys host-runner accepts.
const WASM_KEYS: &str = "timeout=DURATION, max-memory-size=SIZE";

/// Where the refusals send the reader for why a key is missing.
const REFERENCE: &str = "docs/src/reference/host-runner.md lists every wasmtime option";

/// One `-S` list, e.g. `-Sconfig,config-var=a=b`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasiList(Vec<WasiOption>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum WasiOption {
    /// `cli`, `http` or `p3` set to yes: host-runner always provides them.
    AlwaysOn,
    Config(bool),
    ConfigVar(String, String),
    Keyvalue(bool),
    KeyvalueData(String, String),
    KeyvalueInMemory(bool),
    KeyvaluePath(std::path::PathBuf),
    KeyvalueRedis(String),
    KeyvalueMaxBytes(u64),
    KeyvalueMaxKeys(u64),
    BufferChunks(usize),
    ChunkSize(usize),
}

impl WasiList {
    /// Parses one `-S` value.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|item| {
                let (key, value) = split_item(item);
                Ok(match key {
                    "cli" | "http" | "p3" => match yes_no("-S", key, value)? {
                        true => WasiOption::AlwaysOn,
                        false => {
                            return Err(format!(
                                "-S{key}=n is not supported: host-runner always provides all of WASI {key}"
                            ));
                        }
                    },
                    "config" => WasiOption::Config(yes_no("-S", key, value)?),
                    "keyvalue" => WasiOption::Keyvalue(yes_no("-S", key, value)?),
                    "config-var" => {
                        let (name, value) = key_value(key, value)?;
                        WasiOption::ConfigVar(name, value)
                    }
                    "keyvalue-in-memory-data" => {
                        let (name, value) = key_value(key, value)?;
                        WasiOption::KeyvalueData(name, value)
                    }
                    "keyvalue-in-memory" => {
                        WasiOption::KeyvalueInMemory(yes_no("-S", key, value)?)
                    }
                    "keyvalue-path" => WasiOption::KeyvaluePath(required(key, value)?.into()),
                    "keyvalue-redis" => WasiOption::KeyvalueRedis(required(key, value)?.to_owned()),
                    "keyvalue-max-bytes" => WasiOption::KeyvalueMaxBytes(
                        parse_size(&required(key, value)?.replace('_', ""))
                            .map_err(|e| format!("-S{key}: {e}"))?,
                    ),
                    "keyvalue-max-keys" => {
                        WasiOption::KeyvalueMaxKeys(count("-S", key, value)? as u64)
                    }
                    "http-outgoing-body-buffer-chunks" => {
                        WasiOption::BufferChunks(count("-S", key, value)?)
                    }
                    "http-outgoing-body-chunk-size" => {
                        WasiOption::ChunkSize(count("-S", key, value)?)
                    }
                    _ => {
                        return Err(format!(
                            "unsupported -S option `{key}`; host-runner accepts {WASI_KEYS} ({REFERENCE})"
                        ));
                    }
                })
            })
            .collect::<Result<_, _>>()
            .map(WasiList)
    }
}

/// The WASI options all `-S` lists ask for, later ones winning as in
/// wasmtime (variables and seed data accumulate).
pub fn wasi_options(lists: &[WasiList]) -> WasiOptions {
    let mut options = WasiOptions::default();
    for option in lists.iter().flat_map(|list| &list.0) {
        match option {
            WasiOption::AlwaysOn => {}
            WasiOption::Config(on) => options.config = *on,
            WasiOption::ConfigVar(k, v) => options.config_vars.push((k.clone(), v.clone())),
            WasiOption::Keyvalue(on) => options.keyvalue = *on,
            WasiOption::KeyvalueData(k, v) => options.keyvalue_data.push((k.clone(), v.clone())),
            WasiOption::KeyvalueInMemory(on) => options.keyvalue_in_memory = *on,
            WasiOption::KeyvaluePath(path) => options.keyvalue_path = Some(path.clone()),
            WasiOption::KeyvalueRedis(url) => options.keyvalue_redis = Some(url.clone()),
            WasiOption::KeyvalueMaxBytes(n) => options.keyvalue_max_bytes = Some(*n),
            WasiOption::KeyvalueMaxKeys(n) => options.keyvalue_max_keys = Some(*n),
            WasiOption::BufferChunks(n) => options.http_outgoing_body_buffer_chunks = Some(*n),
            WasiOption::ChunkSize(n) => options.http_outgoing_body_chunk_size = Some(*n),
        }
    }
    options
}

/// One `-W` list, e.g. `-Wtimeout=5s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmList(Vec<WasmOption>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum WasmOption {
    Timeout(Duration),
    MaxMemorySize(u64),
}

/// What the `-W` lists ask for; each has a host-runner flag of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WasmOptions {
    /// `-Wtimeout`: `--request-timeout`.
    pub timeout: Option<Duration>,
    /// `-Wmax-memory-size`: `--max-memory-size`.
    pub max_memory_size: Option<u64>,
}

impl WasmList {
    /// Parses one `-W` value.
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(|item| {
                let (key, value) = split_item(item);
                let value = || {
                    value.ok_or_else(|| format!("-W{key} needs a value, e.g. -W{key}=…"))
                };
                match key {
                    "timeout" => parse_duration(value()?)
                        .map(WasmOption::Timeout)
                        .map_err(|e| format!("-Wtimeout: {e}")),
                    "max-memory-size" => parse_size(&value()?.replace('_', ""))
                        .map(WasmOption::MaxMemorySize)
                        .map_err(|e| format!("-Wmax-memory-size: {e}")),
                    _ => Err(format!(
                        "unsupported -W option `{key}`; host-runner accepts {WASM_KEYS} ({REFERENCE})"
                    )),
                }
            })
            .collect::<Result<_, _>>()
            .map(WasmList)
    }
}

/// What all `-W` lists ask for, later ones winning.
pub fn wasm_options(lists: &[WasmList]) -> WasmOptions {
    let mut options = WasmOptions::default();
    for option in lists.iter().flat_map(|list| &list.0) {
        match option {
            WasmOption::Timeout(t) => options.timeout = Some(*t),
            WasmOption::MaxMemorySize(n) => options.max_memory_size = Some(*n),
        }
    }
    options
}

/// `KEY=VALUE` splits at the first `=`; a bare `KEY` has no value.
fn split_item(item: &str) -> (&str, Option<&str>) {
    match item.split_once('=') {
        Some((key, value)) => (key, Some(value)),
        None => (item, None),
    }
}

fn yes_no(flag: &str, key: &str, value: Option<&str>) -> Result<bool, String> {
    match value {
        None | Some("y" | "yes" | "true") => Ok(true),
        Some("n" | "no" | "false") => Ok(false),
        Some(other) => Err(format!(
            "{flag}{key}={other}: expected y or n (or nothing, meaning y)"
        )),
    }
}

fn count(flag: &str, key: &str, value: Option<&str>) -> Result<usize, String> {
    value
        .and_then(|v| v.replace('_', "").parse().ok())
        .ok_or_else(|| format!("{flag}{key} needs a whole number, e.g. {flag}{key}=4"))
}

/// A value that must be given and not be empty, e.g. `keyvalue-path=PATH`.
fn required<'a>(key: &str, value: Option<&'a str>) -> Result<&'a str, String> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("-S{key} needs a value, e.g. -S{key}=…"))
}

/// `config-var=NAME=VALUE`: as in wasmtime, a missing `=VALUE` means empty.
fn key_value(key: &str, value: Option<&str>) -> Result<(String, String), String> {
    let value =
        value.ok_or_else(|| format!("-S{key} needs NAME=VALUE, e.g. -S{key}=greeting=hi"))?;
    let (name, value) = value.split_once('=').unwrap_or((value, ""));
    if name.is_empty() {
        return Err(format!("-S{key}={value}: the name before `=` is empty"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Largest `--header @FILE`: far more headers than any request carries.
const MAX_HEADER_FILE: u64 = 1 << 20;

/// Parses one `--header` value: `NAME: VALUE`, or `@FILE` with one such
/// header per line (blank lines skipped).
pub fn parse_header_arg(text: &str) -> Result<RequestHeaders, String> {
    let Some(path) = text.strip_prefix('@') else {
        return parse_header(text).map(|header| RequestHeaders(vec![header]));
    };
    let contents = crate::files::read_regular_text(
        std::path::Path::new(path),
        MAX_HEADER_FILE,
        "the header file",
    )
    .map_err(|e| e.to_string())?;
    contents
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| parse_header(line).map_err(|e| format!("{path}: {e}")))
        .collect::<Result<_, _>>()
        .map(RequestHeaders)
}

fn parse_header(text: &str) -> Result<(HeaderName, HeaderValue), String> {
    let invalid = |what: &str| format!("invalid header `{text}` ({what}); expected NAME: VALUE");
    let (name, value) = text.split_once(':').ok_or_else(|| invalid("no `:`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| invalid("bad name"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| invalid("bad value"))?;
    Ok((name, value))
}

/// Parses one `--env` value: `NAME=VALUE`, or `NAME` to pass on the host's
/// value of `NAME` (see [`guest_env`]).
pub fn parse_env(text: &str) -> Result<(String, Option<String>), String> {
    let (name, value) = match text.split_once('=') {
        Some((name, value)) => (name, Some(value.to_owned())),
        None => (text, None),
    };
    if name.is_empty() {
        return Err(format!(
            "`{text}` has no variable name; expected NAME=VALUE or NAME"
        ));
    }
    Ok((name.to_owned(), value))
}

/// The variables the guest sees: a `NAME` without a value takes the host's
/// value, and is left unset when the host has none, as `wasmtime serve`
/// does (so one script serves either way).
pub fn guest_env(vars: &[(String, Option<String>)]) -> Vec<(String, String)> {
    vars.iter()
        .filter_map(|(name, value)| {
            let value = value.clone().or_else(|| std::env::var(name).ok())?;
            Some((name.clone(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wasi(lists: &[&str]) -> Result<WasiOptions, String> {
        let lists = lists
            .iter()
            .map(|l| WasiList::parse(l))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(wasi_options(&lists))
    }

    #[test]
    fn wasi_lists_read_like_wasmtime_and_accumulate() {
        let options = wasi(&[
            "cli",
            "config,config-var=a=b=c,config-var=empty",
            "keyvalue=y,keyvalue-in-memory-data=hello=world",
            "http-outgoing-body-buffer-chunks=2,http-outgoing-body-chunk-size=1_024",
        ])
        .expect("valid lists");
        assert!(options.config && options.keyvalue);
        assert_eq!(
            options.config_vars,
            [("a".into(), "b=c".into()), ("empty".into(), String::new())]
        );
        assert_eq!(options.keyvalue_data, [("hello".into(), "world".into())]);
        assert_eq!(options.http_outgoing_body_buffer_chunks, Some(2));
        assert_eq!(options.http_outgoing_body_chunk_size, Some(1024));
        assert!(!wasi(&["keyvalue", "keyvalue=n"]).expect("valid").keyvalue);
    }

    #[test]
    fn the_store_options_name_where_it_lives_and_how_much_it_holds() {
        let options = wasi(&[
            "keyvalue,keyvalue-path=data/kv.sqlite3,keyvalue-in-memory=n",
            "keyvalue-redis=redis://127.0.0.1:6379/0",
            "keyvalue-max-bytes=64MiB,keyvalue-max-keys=1_000",
        ])
        .expect("valid lists");
        assert_eq!(options.keyvalue_path, Some("data/kv.sqlite3".into()));
        assert_eq!(
            options.keyvalue_redis.as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
        assert_eq!(
            (options.keyvalue_max_bytes, options.keyvalue_max_keys),
            (Some(64 << 20), Some(1000))
        );
        assert!(!options.keyvalue_in_memory);
        assert!(
            wasi(&["keyvalue-in-memory"])
                .expect("valid")
                .keyvalue_in_memory
        );
        for bad in [
            "keyvalue-path",
            "keyvalue-path=",
            "keyvalue-max-bytes=lots",
            "keyvalue-max-keys=-1",
        ] {
            let error = wasi(&[bad]).expect_err(bad);
            assert!(
                error.starts_with("-Skeyvalue-") && !error.contains('\n'),
                "{error}"
            );
        }
    }

    #[test]
    fn an_unsupported_option_is_one_line_naming_it() {
        for (list, named) in [
            ("tcp", "`tcp`"),
            ("cli,inherit-network", "`inherit-network`"),
            ("cli=n", "-Scli=n"),
            ("config=maybe", "-Sconfig=maybe"),
            (
                "http-outgoing-body-chunk-size=lots",
                "-Shttp-outgoing-body-chunk-size",
            ),
        ] {
            let error = WasiList::parse(list).expect_err(list);
            assert!(error.contains(named), "{list}: {error}");
            assert!(!error.contains('\n'), "{error}");
        }
        let error = WasmList::parse("fuel=10").expect_err("fuel");
        assert!(
            error.contains("`fuel`") && error.contains("timeout=DURATION"),
            "{error}"
        );
    }

    #[test]
    fn wasm_lists_set_the_timeout_and_memory_limit() {
        let lists = [
            WasmList::parse("timeout=250ms").expect("valid"),
            WasmList::parse("max-memory-size=1_048_576").expect("valid"),
        ];
        let options = wasm_options(&lists);
        assert_eq!(options.timeout, Some(Duration::from_millis(250)));
        assert_eq!(options.max_memory_size, Some(1 << 20));
        assert!(WasmList::parse("timeout").is_err());
    }

    #[test]
    fn headers_take_name_colon_value_and_files_of_them() {
        let one = parse_header_arg("X-Forwarded-For:  10.0.0.1").expect("valid");
        assert_eq!(one.0[0].0, "x-forwarded-for");
        assert_eq!(one.0[0].1, "10.0.0.1");
        assert!(parse_header_arg("no colon").is_err());
        assert!(parse_header_arg("bad name: x").is_err());
        let error = parse_header_arg("@/no/such/file").expect_err("missing file");
        assert!(error.contains("/no/such/file"), "{error}");
    }

    #[test]
    fn an_env_name_missing_on_the_host_is_left_unset() {
        let vars = [
            parse_env("REPRISE_SURELY_UNSET_VARIABLE").expect("valid"),
            parse_env("GIVEN=x=y").expect("valid"),
        ];
        assert_eq!(guest_env(&vars), [("GIVEN".to_owned(), "x=y".to_owned())]);
        assert!(parse_env("=x").is_err());
    }
}
