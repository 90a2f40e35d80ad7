//! The rules every backend keeps, checked on the in-memory and the file
//! backend alike (Redis is checked end to end, in tests/it/kv_redis.rs).

use super::*;
use atomics::Host as _;
use batch::Host as _;
use store::{Host as _, HostBucket as _};

fn bucket() -> Resource<Bucket> {
    Resource::new_own(0)
}

const QUOTA: Quota = Quota {
    max_bytes: 1 << 20,
    max_keys: 100,
};

/// A fresh directory under the system's temporary one.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("reprise-kv-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Room for what the tests other than the quota's write.
const ROOMY: Quota = Quota {
    max_bytes: 64 << 20,
    max_keys: 10_000,
};

/// One store of each local backend, each with `quota`.
fn stores(name: &str, quota: Quota) -> Vec<KeyValueStore> {
    let file = file::FileStore::open(&scratch(name).join("kv.sqlite3")).expect("a file store");
    vec![
        KeyValueStore::in_memory(&[], quota),
        KeyValueStore {
            backend: Box::new(file),
            quota,
        },
    ]
}

fn view(store: &KeyValueStore, budget: u64) -> KeyValueView<'_> {
    KeyValueView { store, budget }
}

#[test]
fn writes_are_seen_through_any_later_handle_and_only_the_default_store_opens() {
    let kv = KeyValueStore::in_memory(&[("seeded".into(), "yes".into())], QUOTA);
    let mut view = view(&kv, 1 << 20);
    let first = view.open(String::new()).expect("the default store");
    view.set(first, "k".into(), b"v".to_vec()).ok();
    let second = view.open(String::new()).expect("the default store");
    assert_eq!(view.get(second, "k".into()).ok(), Some(Some(b"v".to_vec())));
    assert_eq!(
        view.get(bucket(), "seeded".into()).ok(),
        Some(Some(b"yes".to_vec()))
    );
    assert!(matches!(view.open("other".into()), Err(Error::NoSuchStore)));
}

#[test]
fn the_store_says_it_is_full_past_its_quota_and_counts_deletes() {
    for kv in stores("quota", QUOTA) {
        let mut view = view(&kv, 4 << 20);
        let big = vec![0; (QUOTA.max_bytes / 2) as usize];
        assert!(view.set(bucket(), "a".into(), big.clone()).is_ok());
        assert!(matches!(
            view.set(bucket(), "b".into(), big.clone()),
            Err(Error::Other(message)) if message.contains("store is full")
        ));
        // A refused batch writes nothing.
        let batch = vec![("c".into(), vec![1]), ("d".into(), big.clone())];
        assert!(view.set_many(bucket(), batch).is_err());
        assert_eq!(view.exists(bucket(), "c".into()).ok(), Some(false));
        // Overwriting a key counts only the difference; deleting frees.
        assert!(view.set(bucket(), "a".into(), big.clone()).is_ok());
        assert!(view.delete(bucket(), "a".into()).is_ok());
        assert!(view.set(bucket(), "b".into(), big).is_ok());
        for i in 0..QUOTA.max_keys - 1 {
            view.set(bucket(), format!("k{i}"), Vec::new())
                .expect("room for a key");
        }
        assert!(view.increment(bucket(), "one-too-many".into(), 1).is_err());
    }
}

#[test]
fn no_call_copies_more_than_its_budget() {
    for kv in stores("budget", ROOMY) {
        let mut roomy = view(&kv, 4 << 20);
        roomy
            .set(bucket(), "big".into(), vec![7; 1 << 20])
            .expect("fits");
        // Eight copies of one 1 MiB value do not fit in 4 MiB: refused
        // before they are made.
        let refused = roomy.get_many(bucket(), vec!["big".into(); 8]);
        assert!(matches!(refused, Err(Error::Other(m))
            if m.contains("8 values (8.0MiB)") && m.contains("(4.0MiB left") && m.contains("read fewer")));
        assert_eq!(
            roomy
                .get_many(bucket(), vec!["big".into(); 3])
                .map(|v| v.len())
                .ok(),
            Some(3)
        );
        let mut tight = view(&kv, 1000);
        assert!(tight.get(bucket(), "big".into()).is_err());
        assert_eq!(tight.get(bucket(), "missing".into()).ok(), Some(None));
    }
}

#[test]
fn keys_come_in_write_order_in_pages_the_cursor_walks_across_deletes() {
    for kv in stores("pages", ROOMY) {
        let mut view = view(&kv, 1 << 20);
        for i in 0..(KEYS_PER_PAGE + 5) {
            view.set(bucket(), format!("k{i:05}"), Vec::new())
                .expect("room");
        }
        let first = view.list_keys(bucket(), None).expect("keys");
        assert_eq!(first.keys.len(), KEYS_PER_PAGE);
        assert_eq!(first.keys[0], "k00000");
        // A key deleted between pages does not move the cursor.
        view.delete(bucket(), "k00000".into()).expect("delete");
        let rest = view.list_keys(bucket(), first.cursor).expect("keys");
        assert_eq!(
            rest.keys,
            ["k01000", "k01001", "k01002", "k01003", "k01004"]
        );
        assert_eq!(rest.cursor, None);
        assert!(view.list_keys(bucket(), Some(u64::MAX)).is_ok());
        // A tight budget shortens the page rather than failing it.
        let short = super::KeyValueView {
            store: &kv,
            budget: 20,
        }
        .list_keys(bucket(), None)
        .expect("a short page");
        assert_eq!(short.keys.len(), 3);
        assert!(short.cursor.is_some());
    }
}

#[test]
fn counters_are_decimal_text_and_refuse_other_values() {
    for kv in stores("counters", ROOMY) {
        let mut view = view(&kv, 1 << 20);
        view.set(bucket(), "text".into(), b"hello".to_vec())
            .expect("room");
        assert_eq!(view.increment(bucket(), "n".into(), 2).ok(), Some(2));
        assert_eq!(view.increment(bucket(), "n".into(), 3).ok(), Some(5));
        assert_eq!(
            view.get(bucket(), "n".into()).ok(),
            Some(Some(b"5".to_vec()))
        );
        assert!(view.increment(bucket(), "text".into(), 1).is_err());
    }
}

#[test]
fn a_file_store_keeps_its_data_and_belongs_to_one_process_at_a_time() {
    let path = scratch("reopen").join("kv.sqlite3");
    {
        let kv = KeyValueStore {
            backend: Box::new(file::FileStore::open(&path).expect("a file store")),
            quota: QUOTA,
        };
        view(&kv, 1 << 20)
            .set(bucket(), "kept".into(), b"yes".to_vec())
            .expect("room");
        let second = file::FileStore::open(&path).err().map(|e| e.to_string());
        assert!(second.is_some_and(|e| e.contains("another host-runner")));
    }
    let kv = KeyValueStore {
        backend: Box::new(file::FileStore::open(&path).expect("reopened")),
        quota: QUOTA,
    };
    assert_eq!(
        view(&kv, 1 << 20).get(bucket(), "kept".into()).ok(),
        Some(Some(b"yes".to_vec()))
    );
    kv.backend.reset(&[]);
    assert_eq!(
        view(&kv, 1 << 20).get(bucket(), "kept".into()).ok(),
        Some(Some(b"yes".to_vec())),
        "a file is never wiped"
    );
}

#[test]
fn a_reset_puts_the_seed_back_under_every_holder() {
    let seed = [("seeded".to_owned(), "1".to_owned())];
    let kv = KeyValueStore::in_memory(&seed, QUOTA);
    view(&kv, 1 << 20)
        .set(bucket(), "written".into(), Vec::new())
        .expect("room");
    view(&kv, 1 << 20)
        .delete(bucket(), "seeded".into())
        .expect("delete");
    kv.reset(&seed);
    assert_eq!(
        view(&kv, 1 << 20).exists(bucket(), "seeded".into()).ok(),
        Some(true)
    );
    assert_eq!(
        view(&kv, 1 << 20).exists(bucket(), "written".into()).ok(),
        Some(false)
    );
}

#[test]
fn the_options_choose_a_file_by_default_and_memory_when_seeded() {
    let mut wasi = WasiOptions::default();
    assert!(
        matches!(Location::chosen(&wasi), Ok(Location::File(p)) if p == Path::new(DEFAULT_PATH))
    );
    wasi.keyvalue_data.push(("a".into(), "1".into()));
    assert!(matches!(Location::chosen(&wasi), Ok(Location::Memory)));
    wasi.keyvalue_path = Some("x".into());
    assert!(Location::chosen(&wasi).is_err());
    wasi.keyvalue_data.clear();
    wasi.keyvalue_redis = Some("redis://127.0.0.1:1/0".into());
    assert!(Location::chosen(&wasi).is_err());
    wasi.keyvalue_path = None;
    let redis = Location::chosen(&wasi).expect("redis").to_string();
    assert_eq!(
        redis,
        "in Redis at 127.0.0.1:1 (shared with every host-runner given its URL)"
    );
}
