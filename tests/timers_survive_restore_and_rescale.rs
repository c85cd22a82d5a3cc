//! Timers are checkpointed, restored and rescaled with their key groups: after a restore at
//! another parallelism every timer fires exactly once, in the subtask owning its key. This holds
//! for every timer store (the heap's, RocksDB column families, RocksDB with heap timers), for
//! both snapshot kinds, and when the restoring job keeps timers in another store than the job
//! that took the checkpoint.

mod common;

use common::directory_coordinator;
use keyedstate::checkpoint::{CheckpointMetadata, CheckpointStorage};
use keyedstate::job::{self, Engine};
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig, TimerStore};
use keyedstate::{ErrorKind, KeyedStateBackend, MaxParallelism, Result, SnapshotKind, TimeDomain};
use std::path::Path;
use std::sync::Arc;

/// Where a subtask's timers live.
#[derive(Debug, Clone, Copy)]
enum Store {
    Heap,
    RocksDb(TimerStore),
}

const STORES: [Store; 3] = [
    Store::Heap,
    Store::RocksDb(TimerStore::RocksDb),
    Store::RocksDb(TimerStore::Heap),
];

fn rocksdb_config(
    timers: TimerStore,
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> RocksDbConfig {
    let range = max_p.range_for_subtask(parallelism, index).unwrap();
    let mut config = RocksDbConfig::new(work.join(format!("subtask-{index}")), max_p, range);
    config.timer_store = timers;
    config
}

fn open(
    store: Store,
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> KeyedStateBackend {
    match store {
        Store::Heap => job::open_subtask(Engine::Heap, max_p, parallelism, index, work).unwrap(),
        Store::RocksDb(timers) => {
            RocksDbBackend::open(rocksdb_config(timers, max_p, parallelism, index, work)).unwrap()
        }
    }
}

fn restore(
    store: Store,
    metadata: &CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<KeyedStateBackend> {
    match store {
        Store::Heap => {
            job::restore_subtask(Engine::Heap, metadata, storage, parallelism, index, work)
        }
        Store::RocksDb(timers) => {
            let config = rocksdb_config(timers, metadata.max_parallelism, parallelism, index, work);
            RocksDbBackend::restore(config, metadata, storage)
        }
    }
}

/// Two subtasks with an event-time and a processing-time timer per key of 0..300, checkpointed.
fn checkpoint_with_timers(
    store: Store,
    kind: SnapshotKind,
    work: &Path,
) -> (
    tempfile::TempDir,
    Arc<dyn CheckpointStorage>,
    CheckpointMetadata,
    Vec<u64>,
) {
    let (dir, storage, mut coordinator) = directory_coordinator(1);
    let max_p = MaxParallelism::new(128).unwrap();
    let backends: Vec<_> = (0..2).map(|i| open(store, max_p, 2, i, work)).collect();
    let mut keys = Vec::new();
    for backend in &backends {
        let timers = backend.timer_service().unwrap();
        for key in 0u64..300 {
            if backend.set_current_key(&key).is_err() {
                continue; // another subtask's key
            }
            timers
                .register(TimeDomain::EventTime, &(), (key * 7 % 100) as i64)
                .unwrap();
            timers
                .register(TimeDomain::ProcessingTime, &"p", key as i64)
                .unwrap();
            keys.push(key);
        }
    }
    let metadata = job::checkpoint(&backends, &mut coordinator, kind).unwrap();
    keys.sort();
    (dir, storage, metadata, keys)
}

#[test]
fn timers_fire_once_after_restore_at_another_parallelism() {
    for source in STORES {
        let kinds: &[SnapshotKind] = match source {
            Store::Heap => &[SnapshotKind::Full],
            Store::RocksDb(_) => &[SnapshotKind::Incremental, SnapshotKind::Full],
        };
        for &kind in kinds {
            let work = tempfile::tempdir().unwrap();
            let (_dir, storage, metadata, expected) =
                checkpoint_with_timers(source, kind, work.path());
            for target in STORES {
                let mut fired = Vec::new();
                for index in 0..3 {
                    let restored = restore(
                        target,
                        &metadata,
                        &storage,
                        3,
                        index,
                        &work.path().join("r"),
                    )
                    .unwrap();
                    let timers = restored.timer_service().unwrap();
                    let mut last = i64::MIN;
                    let before = fired.len();
                    timers
                        .advance(TimeDomain::EventTime, i64::MAX, |timer| {
                            assert!(timer.timestamp >= last, "timestamp order after restore");
                            last = timer.timestamp;
                            let key: u64 = timer.key_as()?;
                            assert_eq!(timer.timestamp, (key * 7 % 100) as i64);
                            fired.push(key);
                            Ok(())
                        })
                        .unwrap();
                    // One processing-time timer per key too, in the same subtask as its
                    // event-time one.
                    let processing = timers
                        .advance(TimeDomain::ProcessingTime, i64::MAX, |_| Ok(()))
                        .unwrap();
                    assert_eq!(processing, fired.len() - before);
                    restored.close().unwrap();
                }
                fired.sort();
                assert_eq!(
                    fired, expected,
                    "{source:?} {kind:?} into {target:?}: each timer once"
                );
            }
        }
    }
}

#[test]
fn heap_timers_of_rocksdb_go_beside_the_incremental_snapshot() {
    for (timers, kept_in_memory) in [(TimerStore::Heap, true), (TimerStore::RocksDb, false)] {
        let work = tempfile::tempdir().unwrap();
        let (_dir, _storage, metadata, _) = checkpoint_with_timers(
            Store::RocksDb(timers),
            SnapshotKind::Incremental,
            work.path(),
        );
        for handle in &metadata.subtasks {
            assert_eq!(handle.heap_timers.is_some(), kept_in_memory, "{timers:?}");
            if let Some(file) = &handle.heap_timers {
                assert!(handle.files().contains(&file), "retention and gc see it");
            }
        }
    }
}

#[test]
fn a_damaged_heap_timers_file_fails_the_restore_naming_it() {
    let work = tempfile::tempdir().unwrap();
    let (dir, storage, metadata, _) = checkpoint_with_timers(
        Store::RocksDb(TimerStore::Heap),
        SnapshotKind::Incremental,
        work.path(),
    );
    let file = metadata.subtasks[0].heap_timers.clone().unwrap();
    let path = dir.path().join("checkpoints").join(&file.path);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    for target in STORES {
        let err = restore(target, &metadata, &storage, 2, 0, &work.path().join("r"))
            .err()
            .expect("a damaged timers file must fail the restore");
        assert_eq!(err.kind(), ErrorKind::Corruption, "{target:?}: {err}");
        assert!(err.to_string().contains(&file.path), "{target:?}: {err}");
    }
}
