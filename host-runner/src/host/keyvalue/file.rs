//! The file backend, host-runner's default: one SQLite database (the
//! `rusqlite` crate with SQLite built in, as Spin keeps its default store),
//! chosen because it is the most widely deployed embedded database, its
//! file format is stable and documented, and anyone can open the file with
//! the `sqlite3` shell to look inside.
//!
//! Durability: the database runs in WAL mode with `synchronous=FULL`, and
//! every write is its own transaction, committed (the WAL fsynced) before
//! the guest's call returns. A write the guest saw succeed therefore
//! survives `kill -9` of host-runner and a power cut.
//!
//! Keys live in a table whose integer primary key is the position a key was
//! first written at, so `list-keys` reads one page of that index from the
//! cursor on. Reads go through a small pool of connections of their own:
//! in WAL mode they never wait for a writer, and writers (one at a time,
//! behind one lock) never wait for them. One host-runner process owns a
//! file (a lock file beside it says so); Redis is the store to share. This
//! module does not compact the file or expire keys.

use std::fs::File;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::{
    Backend, Budget, Error, KeyResponse, Quota, create_parent, failed, next_counter, page,
};

/// Reader connections kept for reuse; more are opened when needed and
/// closed when returned past this many.
const IDLE_READERS: usize = 16;

/// How long a connection waits for a lock SQLite holds briefly (a
/// checkpoint, a reader starting while the WAL is reset, another program
/// such as the `sqlite3` shell writing) before the guest gets an error,
/// rather than failing at once with "database is locked". Set on every
/// connection, not left to the driver's default.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct FileStore {
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    path: std::path::PathBuf,
    /// Held (and locked) for as long as the store is open.
    _lock: File,
}

/// The one connection that writes, and what the table holds, counted at
/// open and kept current by every write.
struct Writer {
    connection: Connection,
    bytes: u64,
    keys: u64,
}

impl FileStore {
    pub(super) fn open(path: &Path) -> anyhow::Result<Self> {
        create_parent(path)?;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = File::create(&lock_path).map_err(|e| {
            anyhow::anyhow!(
                "cannot create {} beside the key-value store: {e}; pick another place with -Skeyvalue-path",
                Path::new(&lock_path).display()
            )
        })?;
        if lock.try_lock().is_err() {
            anyhow::bail!(
                "another host-runner is using the key-value store {}; give each its own -Skeyvalue-path, or share one store with -Skeyvalue-redis",
                path.display()
            );
        }
        let cannot = |e: rusqlite::Error| {
            anyhow::anyhow!(
                "cannot open the key-value store {} ({e}); is it an SQLite file? Pick another with -Skeyvalue-path",
                path.display()
            )
        };
        let connection = Connection::open(path).map_err(cannot)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(cannot)?;
        connection
            .execute_batch(
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS kv (
                     position INTEGER PRIMARY KEY AUTOINCREMENT,
                     key TEXT NOT NULL UNIQUE,
                     value BLOB NOT NULL
                 );",
            )
            .map_err(cannot)?;
        let (keys, bytes) = connection
            .query_row(
                "SELECT count(*), coalesce(sum(octet_length(key) + length(value)), 0) FROM kv",
                [],
                |row| Ok((row.get::<_, i64>(0)? as u64, row.get::<_, i64>(1)? as u64)),
            )
            .map_err(cannot)?;
        Ok(Self {
            writer: Mutex::new(Writer {
                connection,
                bytes,
                keys,
            }),
            readers: Mutex::new(Vec::new()),
            path: path.to_owned(),
            _lock: lock,
        })
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic mid-write rolls its transaction back when the connection's
        // transaction is dropped; the counters may then be stale by that
        // one write, which only the quota sees.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `read` on a reader connection from the pool.
    fn read<R>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Result<R, Error> {
        let pooled = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let connection = match pooled {
            Some(connection) => connection,
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|connection| {
                connection.busy_timeout(BUSY_TIMEOUT)?;
                Ok(connection)
            })
            .map_err(|e| failed("open a reader", e))?,
        };
        let result = read(&connection).map_err(|e| failed("read", e));
        let mut readers = self.readers.lock().unwrap_or_else(|e| e.into_inner());
        if readers.len() < IDLE_READERS {
            readers.push(connection);
        }
        result
    }
}

/// What the quota counts for one entry on disk: its key and value bytes.
fn cost(key: &str, value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

fn stored_cost(connection: &Connection, key: &str) -> rusqlite::Result<Option<u64>> {
    connection
        .query_row(
            "SELECT octet_length(key) + length(value) FROM kv WHERE key = ?1",
            [key],
            |row| row.get::<_, i64>(0),
        )
        .optional()
        .map(|cost| cost.map(|c| c as u64))
}

impl Backend for FileStore {
    fn get_many(
        &self,
        keys: &[String],
        budget: &mut Budget,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let mut refused = None;
        let values = self.read(|connection| {
            // One read transaction, so the sizes checked are the sizes read.
            let transaction = connection.unchecked_transaction()?;
            let mut sizes = Vec::with_capacity(keys.len());
            let mut total = 0;
            for key in keys {
                let size: Option<i64> = transaction
                    .query_row(
                        "SELECT length(value) FROM kv WHERE key = ?1",
                        [key],
                        |row| row.get(0),
                    )
                    .optional()?;
                total += size.unwrap_or(0) as u64;
                sizes.push(size);
            }
            if let Err(e) = budget.take_values(keys, total) {
                refused = Some(e);
                return Ok(Vec::new());
            }
            keys.iter()
                .zip(sizes)
                .map(|(key, size)| match size {
                    None => Ok(None),
                    Some(_) => transaction
                        .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| {
                            row.get::<_, Vec<u8>>(0)
                        })
                        .optional(),
                })
                .collect()
        })?;
        match refused {
            Some(e) => Err(e),
            None => Ok(values),
        }
    }

    fn set_many(&self, entries: Vec<(String, Vec<u8>)>, quota: &Quota) -> Result<(), Error> {
        let mut writer = self.writer();
        let writer = &mut *writer;
        let transaction = writer
            .connection
            .transaction()
            .map_err(|e| failed("write", e))?;
        let (bytes, keys) = quota.admit_writes(
            (writer.bytes, writer.keys),
            entries
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_slice())),
            cost,
            |key| stored_cost(&transaction, key).map_err(|e| failed("write", e)),
        )?;
        for (key, value) in &entries {
            transaction
                .execute(
                    "INSERT INTO kv (key, value) VALUES (?1, ?2)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    params![key, value],
                )
                .map_err(|e| failed("write", e))?;
        }
        transaction.commit().map_err(|e| failed("write", e))?;
        (writer.bytes, writer.keys) = (bytes, keys);
        Ok(())
    }

    fn delete_many(&self, keys: &[String]) -> Result<(), Error> {
        let mut writer = self.writer();
        let writer = &mut *writer;
        let transaction = writer
            .connection
            .transaction()
            .map_err(|e| failed("delete", e))?;
        let (mut bytes, mut count) = (writer.bytes, writer.keys);
        for key in keys {
            let removed: Option<i64> = transaction
                .query_row(
                    "DELETE FROM kv WHERE key = ?1 RETURNING octet_length(key) + length(value)",
                    [key],
                    |row| row.get(0),
                )
                .optional()
                .map_err(|e| failed("delete", e))?;
            if let Some(removed) = removed {
                bytes -= removed as u64;
                count -= 1;
            }
        }
        transaction.commit().map_err(|e| failed("delete", e))?;
        (writer.bytes, writer.keys) = (bytes, count);
        Ok(())
    }

    fn exists(&self, key: &str) -> Result<bool, Error> {
        self.read(|connection| {
            connection
                .query_row("SELECT 1 FROM kv WHERE key = ?1", [key], |_| Ok(()))
                .optional()
                .map(|found| found.is_some())
        })
    }

    fn list_keys(
        &self,
        cursor: u64,
        limit: usize,
        budget: &mut Budget,
    ) -> Result<KeyResponse, Error> {
        self.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT position, key FROM kv WHERE position >= ?1 ORDER BY position LIMIT ?2",
            )?;
            let rows = statement.query_map(params![cursor as i64, limit as i64 + 1], |row| {
                Ok((row.get::<_, i64>(0)? as u64, row.get::<_, String>(1)?))
            })?;
            page(rows, limit, budget)
        })?
    }

    fn increment(&self, key: &str, delta: u64, quota: &Quota) -> Result<u64, Error> {
        let mut writer = self.writer();
        let writer = &mut *writer;
        let transaction = writer
            .connection
            .transaction()
            .map_err(|e| failed("write", e))?;
        let old: Option<Vec<u8>> = transaction
            .query_row("SELECT value FROM kv WHERE key = ?1", [key], |row| {
                row.get(0)
            })
            .optional()
            .map_err(|e| failed("read", e))?;
        let next = next_counter(key, old.as_deref(), delta)?;
        let value = next.to_string();
        let (bytes, keys) = quota.admit_writes(
            (writer.bytes, writer.keys),
            [(key, value.as_bytes())],
            cost,
            |_| Ok(old.as_deref().map(|old| cost(key, old))),
        )?;
        transaction
            .execute(
                "INSERT INTO kv (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value.as_bytes()],
            )
            .map_err(|e| failed("write", e))?;
        transaction.commit().map_err(|e| failed("write", e))?;
        (writer.bytes, writer.keys) = (bytes, keys);
        Ok(next)
    }

    fn reset(&self, _: &[(String, String)]) -> bool {
        false
    }
}
