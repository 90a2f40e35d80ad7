//! The Redis backend (`-Skeyvalue-redis=redis://HOST:PORT/DB`): one store
//! that several host-runner processes share, whatever balances requests
//! between them.
//!
//! Each call is one Redis command (or one Lua script where a size must be
//! checked before a value is sent), so what a guest sees is what every other
//! host sees. `list-keys` is Redis's `SCAN`, whose cursor is a `u64` as the
//! WIT's is: a page costs its own size, and keys written or deleted during
//! a listing may or may not appear (Redis's guarantee). The quota is
//! applied to keys only (`-Skeyvalue-max-keys`, against `DBSIZE`, the
//! whole database): Redis keeps no running total of bytes, so bytes are
//! Redis's own `maxmemory` to bound, and a write it refuses for memory
//! answers the guest "store is full". The URL's password is never printed.
//! This module does not pick a database or a key prefix for the guest: the
//! URL's database number does that.

use std::sync::Mutex;
use std::time::Duration;

use redis::{Client, Connection, ErrorKind, RedisError, Value};

use super::{Backend, Budget, Error, KeyResponse, Quota, failed};

/// How long a connection attempt or one command may take before the guest
/// gets an error (the call runs on a serving thread).
const TIMEOUT: Duration = Duration::from_secs(5);

/// Connections kept for reuse.
const IDLE_CONNECTIONS: usize = 16;

/// Sends the values only when together they fit the caller's budget: their
/// total size (an integer) when they do not, else `MGET`'s answer. One
/// script, so the sizes checked are the sizes sent.
const GET_WITHIN: &str = "local total = 0 \
     for _, key in ipairs(KEYS) do total = total + redis.call('STRLEN', key) end \
     if total > tonumber(ARGV[1]) then return total end \
     return redis.call('MGET', unpack(KEYS))";

/// Sets `KEYS[i]` to `ARGV[i + 1]` unless the keys new to the database
/// would take it past `ARGV[1]` keys: 0 when written, else the number of
/// keys it would have held. One script, so no other write slips between
/// the count and the write.
const SET_WITHIN: &str = "local new, seen = 0, {} \
     for _, key in ipairs(KEYS) do \
       if not seen[key] then \
         seen[key] = true \
         if redis.call('EXISTS', key) == 0 then new = new + 1 end \
       end \
     end \
     local total = redis.call('DBSIZE') + new \
     if new > 0 and total > tonumber(ARGV[1]) then return total end \
     for i, key in ipairs(KEYS) do redis.call('SET', key, ARGV[i + 1]) end \
     return 0";

/// `INCRBY KEYS[1] ARGV[2]` unless the key is new and the database already
/// holds `ARGV[1]` keys: `{1, counter}` when incremented, else `{0, keys it
/// would have held}`.
const INCREMENT_WITHIN: &str = "if redis.call('EXISTS', KEYS[1]) == 0 then \
       local total = redis.call('DBSIZE') + 1 \
       if total > tonumber(ARGV[1]) then return {0, total} end \
     end \
     return {1, redis.call('INCRBY', KEYS[1], ARGV[2])}";

pub(super) struct RedisStore {
    client: Client,
    idle: Mutex<Vec<Connection>>,
}

impl RedisStore {
    /// Connects once, so a wrong URL or a server that is down is reported
    /// at start-up.
    pub(super) fn connect(url: &str) -> anyhow::Result<Self> {
        let client = Client::open(url).map_err(|e| {
            anyhow::anyhow!(
                "-Skeyvalue-redis: not a Redis URL ({e}); expected redis://HOST:PORT/DB"
            )
        })?;
        let store = Self {
            client,
            idle: Mutex::new(Vec::new()),
        };
        store
            .run(|connection| redis::cmd("PING").query::<String>(connection))
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot reach the Redis server at {} ({}); start it or fix -Skeyvalue-redis",
                    store.address(),
                    describe(&e)
                )
            })?;
        Ok(store)
    }

    fn address(&self) -> String {
        self.client.get_connection_info().addr().to_string()
    }

    /// Runs `command` on a pooled connection; a connection that failed is
    /// dropped rather than reused.
    fn run<R>(
        &self,
        command: impl FnOnce(&mut Connection) -> redis::RedisResult<R>,
    ) -> redis::RedisResult<R> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => {
                let connection = self.client.get_connection_with_timeout(TIMEOUT)?;
                connection.set_read_timeout(Some(TIMEOUT))?;
                connection.set_write_timeout(Some(TIMEOUT))?;
                connection
            }
        };
        let result = command(&mut connection);
        let broken = matches!(&result, Err(e) if e.is_io_error() || e.is_timeout());
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if !broken && idle.len() < IDLE_CONNECTIONS {
            idle.push(connection);
        }
        result
    }
}

/// `HOST:PORT` of the server a URL names, without its credentials.
pub(super) fn address(url: &str) -> Option<String> {
    Some(
        Client::open(url)
            .ok()?
            .get_connection_info()
            .addr()
            .to_string(),
    )
}

/// A Redis error in one line, with Redis's own "out of memory" turned into
/// the store being full.
fn describe(error: &RedisError) -> String {
    error.to_string().replace('\n', " ")
}

/// The quota's refusal on Redis, where it counts keys only.
fn full(quota: &Quota) -> Error {
    Error::Other(format!(
        "the key-value store is full (its Redis database may hold {} keys); delete keys before writing more, or raise -Skeyvalue-max-keys",
        quota.max_keys
    ))
}

fn refused(what: &str, error: RedisError) -> Error {
    if error.code() == Some("OOM") {
        return Error::Other(
            "the key-value store is full (the Redis server is at its maxmemory); delete keys before writing more".to_owned(),
        );
    }
    if error.kind() == ErrorKind::UnexpectedReturnType {
        return Error::Other(format!(
            "the key-value store cannot {what}: {}",
            describe(&error)
        ));
    }
    failed(what, describe(&error))
}

impl Backend for RedisStore {
    fn get_many(
        &self,
        keys: &[String],
        budget: &mut Budget,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let left = budget.left;
        let reply: Value = self
            .run(|c| {
                redis::cmd("EVAL")
                    .arg(GET_WITHIN)
                    .arg(keys.len())
                    .arg(keys)
                    .arg(left)
                    .query(c)
            })
            .map_err(|e| refused("read", e))?;
        let values = match reply {
            Value::Int(total) => {
                budget.take_values(keys, total as u64)?;
                return Err(failed(
                    "read",
                    "the values changed while being read; try again",
                ));
            }
            Value::Array(values) => values,
            other => return Err(failed("read", format!("unexpected reply {other:?}"))),
        };
        let values: Vec<Option<Vec<u8>>> = values
            .into_iter()
            .map(|value| match value {
                Value::BulkString(bytes) => Some(bytes),
                _ => None,
            })
            .collect();
        let total = values.iter().flatten().map(|v| v.len() as u64).sum();
        budget.take_values(keys, total)?;
        Ok(values)
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>, quota: &Quota) -> Result<(), Error> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut command = redis::cmd("EVAL");
        command.arg(SET_WITHIN).arg(entries.len());
        for (key, _) in &entries {
            command.arg(key);
        }
        command.arg(quota.max_keys);
        for (_, value) in &entries {
            command.arg(value);
        }
        let would_hold: u64 = self
            .run(|c| command.query(c))
            .map_err(|e| refused("write", e))?;
        match would_hold {
            0 => Ok(()),
            _ => Err(full(quota)),
        }
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        if keys.is_empty() {
            return Ok(());
        }
        self.run(|c| redis::cmd("DEL").arg(keys).query::<()>(c))
            .map_err(|e| refused("delete", e))
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.run(|c| redis::cmd("EXISTS").arg(key).query::<bool>(c))
            .map_err(|e| refused("read", e))
    }

    fn list_keys(
        &self,
        cursor: u64,
        limit: usize,
        budget: &mut Budget,
    ) -> Result<KeyResponse, Error> {
        let (next, keys): (u64, Vec<String>) = self
            .run(|c| {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(limit)
                    .query(c)
            })
            .map_err(|e| refused("list keys", e))?;
        for key in &keys {
            budget.take(key, key.len() as u64)?;
        }
        Ok(KeyResponse {
            keys,
            cursor: (next != 0).then_some(next),
        })
    }

    fn increment(&self, key: &str, delta: u64, quota: &Quota) -> Result<u64, Error> {
        let delta = i64::try_from(delta).map_err(|_| {
            Error::Other(format!(
                "Redis cannot add {delta} to a counter: it is more than i64::MAX"
            ))
        })?;
        let (incremented, next): (u8, i64) = self
            .run(|c| {
                redis::cmd("EVAL")
                    .arg(INCREMENT_WITHIN)
                    .arg(1)
                    .arg(key)
                    .arg(quota.max_keys)
                    .arg(delta)
                    .query(c)
            })
            .map_err(|e| refused("increment a counter", e))?;
        if incremented == 0 {
            return Err(full(quota));
        }
        u64::try_from(next).map_err(|_| failed("increment a counter", "the counter is negative"))
    }

    fn reset(&self, _: &[(String, String)]) -> bool {
        false
    }
}
