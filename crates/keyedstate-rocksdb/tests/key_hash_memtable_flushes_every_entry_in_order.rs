//! The key-hash memtable's flush hands RocksDB its entries from an array sorted by the first 16
//! bytes of each key, then by RocksDB's comparator (`cpp/sorted_flush.cc`). Keys that share
//! more than 16 bytes, keys shorter than 16, several versions of one key (merge operands of a
//! list, values that grow and cannot be updated in place, deletions) and map entries in several
//! namespaces must all reach the checkpoint's files, in order (RocksDB fails a flush whose keys
//! are out of order), and read back as RocksDB's skip-list memtable writes them. One key has
//! more entries in a memtable than a bucket keeps in a linked list (256), so its bucket becomes
//! a skip list. Writes reach the memtable as they come (no write buffer), one entry each.

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{
    KeyedStateBackend, ListStateDescriptor, MapStateDescriptor, MaxParallelism, SnapshotKind,
    StateDigest, ValueStateDescriptor, job,
};
use keyedstate_rocksdb::{Memtable, RocksDbBackend, RocksDbConfig};
use std::path::Path;
use std::sync::Arc;

/// Keys sharing 24 bytes, keys of 1-3 bytes, and keys in between.
fn key(i: u32) -> String {
    match i % 3 {
        0 => format!("a-shared-prefix-of-24-by{i:06}"),
        1 => format!("{}", i % 500),
        _ => format!("k{i}"),
    }
}

/// Rounds of writes, each followed by an incremental checkpoint (a flush of the memtable);
/// returns the digest after each, and the digest of the last checkpoint restored.
fn run(dir: &Path, memtable: Memtable) -> (Vec<StateDigest>, StateDigest) {
    let max_p = MaxParallelism::new(300).unwrap();
    let range = max_p.full_range();
    let mut config = RocksDbConfig::new(dir.join("db"), max_p, range);
    config.memtable = memtable;
    config.write_batch_entries = 0;
    let backend = RocksDbBackend::open(config).unwrap();
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.join("checkpoints")).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let mut digests = Vec::new();
    let mut metadata = None;
    for round in 0..4u32 {
        write_round(&backend, round);
        metadata = Some(
            job::checkpoint(
                std::slice::from_ref(&backend),
                &mut coordinator,
                SnapshotKind::Incremental,
            )
            .unwrap(),
        );
        digests.push(backend.digest().unwrap());
    }
    if memtable == Memtable::KeyHash {
        assert!(
            options_name_the_sorted_flush(&dir.join("db")),
            "the key-hash memtable is wrapped in the sorted flush"
        );
    }
    backend.close().unwrap();
    let mut config = RocksDbConfig::new(dir.join("restored"), max_p, range);
    config.memtable = memtable;
    let restored = RocksDbBackend::restore(config, &metadata.unwrap(), &storage).unwrap();
    let digest = restored.digest().unwrap();
    restored.close().unwrap();
    (digests, digest)
}

fn write_round(backend: &KeyedStateBackend, round: u32) {
    let value = backend
        .value_state(&ValueStateDescriptor::<String>::new("value"))
        .unwrap();
    let list = backend
        .list_state(&ListStateDescriptor::<u32>::new("list"))
        .unwrap();
    let mut map = backend
        .map_state(&MapStateDescriptor::<u32, u64>::new("map"))
        .unwrap();
    for i in 0..3_000u32 {
        backend.set_current_key(&key(i)).unwrap();
        // A value that grows each round: a new version, not an update in place.
        value
            .update(&"v".repeat(1 + (round + i) as usize % 7))
            .unwrap();
        if i % 5 == round % 5 {
            value.clear().unwrap();
        }
        list.add(&(i + round)).unwrap();
        list.add(&round).unwrap();
        for window in 0..2u32 {
            map.set_namespace(&(window, round % 2)).unwrap();
            map.put(&(i % 4), &u64::from(round)).unwrap();
            if i % 7 == 0 {
                map.remove(&0).unwrap();
            }
        }
    }
    // The hot key: 400 map entries and 300 list appends in this round's memtable, read back
    // from it before the flush.
    backend.set_current_key("hot").unwrap();
    map.set_namespace(&(9u32, 9u32)).unwrap();
    for user_key in 0..400u32 {
        map.put(&user_key, &u64::from(round + user_key)).unwrap();
    }
    for i in 0..300u32 {
        list.add(&(round * 1_000 + i)).unwrap();
    }
    assert_eq!(map.get(&0).unwrap(), Some(u64::from(round)));
    assert_eq!(map.get(&399).unwrap(), Some(u64::from(round + 399)));
    assert_eq!(map.keys().unwrap(), (0..400u32).collect::<Vec<_>>());
    let hot_list = list.get().unwrap();
    assert_eq!(hot_list.len(), 300 * (round as usize + 1));
    assert_eq!(hot_list.last(), Some(&(round * 1_000 + 299)));
}

/// Whether an OPTIONS file under `db` records the sorted-flush memtable factory.
fn options_name_the_sorted_flush(db: &Path) -> bool {
    walk(db).into_iter().any(|path| {
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("OPTIONS-"))
            && std::fs::read_to_string(&path)
                .unwrap()
                .contains("KeyedStateSortedFlush")
    })
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn key_hash_memtable_flushes_read_as_the_skip_lists_do() {
    let (hash_dir, skip_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (hash, hash_restored) = run(hash_dir.path(), Memtable::KeyHash);
    let (skip, skip_restored) = run(skip_dir.path(), Memtable::SkipList);
    assert_eq!(hash, skip, "the live state after each round");
    assert_eq!(hash_restored, skip_restored, "the last checkpoint restored");
    assert_eq!(hash_restored, *hash.last().unwrap());
}
