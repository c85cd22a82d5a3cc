//! A checkpoint restores, at the same parallelism, exactly the state it acknowledged: on both
//! backends, from incremental and full snapshots, and across backends for full snapshots.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::checkpoint::{MemoryStorage, SnapshotHandle};
use keyedstate::job::Engine;
use keyedstate::{ErrorKind, SnapshotKind};
use std::collections::BTreeSet;
use std::sync::Arc;

fn checkpoint_then_restore(engine: Engine, kind: SnapshotKind, parallelism: u32) {
    let (_dir, storage, mut coordinator) = directory_coordinator(2);
    let job = TestJob::new(engine, 128, parallelism);
    let mut acknowledged = None;
    for round in 0..3 {
        job.write_round(round);
        let metadata = job.checkpoint(&mut coordinator, kind);
        acknowledged = Some((metadata, job.digest()));
    }
    job.write_round(99); // after the checkpoint: must not be restored
    let (metadata, digest) = acknowledged.unwrap();
    assert!(digest.entries > 0);
    let restored = TestJob::restored(engine, &metadata, &storage, parallelism).unwrap();
    assert_eq!(
        restored.digest(),
        digest,
        "{engine:?} {kind:?} p={parallelism}"
    );
    for key in 0..common::KEYS {
        assert_eq!(restored.value_of(key), job_value_at_round(key, 2));
    }

    // The restored job goes on checkpointing into the same root, and restores again.
    restored.write_round(3);
    let next = restored.checkpoint(&mut coordinator, kind);
    let again = TestJob::restored(engine, &next, &storage, parallelism).unwrap();
    assert_eq!(again.digest(), restored.digest());
}

/// The value a key holds after rounds 0..=last of the workload.
fn job_value_at_round(key: u64, last: u64) -> Option<u64> {
    let round = (0..=last).rev().find(|r| (key + r).is_multiple_of(3))?;
    (!(key + round).is_multiple_of(7)).then_some(round * 1000 + key)
}

#[test]
fn heap_full_checkpoint_restores() {
    checkpoint_then_restore(Engine::Heap, SnapshotKind::Full, 1);
    checkpoint_then_restore(Engine::Heap, SnapshotKind::Full, 3);
}

#[test]
fn rocksdb_incremental_checkpoint_restores() {
    checkpoint_then_restore(Engine::RocksDb, SnapshotKind::Incremental, 1);
    checkpoint_then_restore(Engine::RocksDb, SnapshotKind::Incremental, 3);
}

#[test]
fn rocksdb_full_checkpoint_restores() {
    checkpoint_then_restore(Engine::RocksDb, SnapshotKind::Full, 1);
    checkpoint_then_restore(Engine::RocksDb, SnapshotKind::Full, 3);
}

#[test]
fn incremental_checkpoints_reuse_unchanged_sst_files() {
    let (_dir, _storage, mut coordinator) = directory_coordinator(2);
    let job = TestJob::new(Engine::RocksDb, 128, 1);
    job.write_round(0);
    // Round 0 into SST files; round 1 stays in the write-ahead log, copied by the second
    // checkpoint (a checkpoint flushes nothing).
    for backend in &job.backends {
        backend.compact().unwrap();
    }
    let first = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    job.write_round(1);
    let second = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    let shared = |m: &keyedstate::checkpoint::CheckpointMetadata| -> BTreeSet<String> {
        m.files()
            .filter(|f| f.is_shared())
            .map(|f| f.path.clone())
            .collect()
    };
    let (a, b) = (shared(&first), shared(&second));
    assert!(
        !a.is_empty() && a == b,
        "the second checkpoint references the first's SSTs and adds none: {a:?} {b:?}"
    );
    let SnapshotHandle::RocksDbIncremental { files, .. } = &second.subtasks[0].snapshot else {
        panic!("incremental handle expected")
    };
    assert!(
        files
            .iter()
            .any(|f| f.name.ends_with(".log") && !f.file.is_shared() && f.file.size > 0),
        "round 1 is in the checkpoint's own copy of the open log: {files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.name == "CURRENT" && !f.file.is_shared()),
        "CURRENT is the checkpoint's own file"
    );
    assert!(files.iter().any(|f| f.name.starts_with("MANIFEST-")));
    assert!(files.iter().any(|f| f.name.starts_with("OPTIONS-")));
}

#[test]
fn full_snapshots_restore_across_backends() {
    for (from, to) in [
        (Engine::Heap, Engine::RocksDb),
        (Engine::RocksDb, Engine::Heap),
    ] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let job = TestJob::new(from, 129, 2);
        job.write_round(0);
        job.write_round(1);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
        let restored = TestJob::restored(to, &metadata, &storage, 2).unwrap();
        assert_eq!(restored.digest(), job.digest(), "{from:?} to {to:?}");
    }
}

#[test]
fn heap_and_rocksdb_write_byte_identical_full_snapshots() {
    let storage: Arc<dyn keyedstate::checkpoint::CheckpointStorage> =
        Arc::new(MemoryStorage::new());
    let mut checksums = Vec::new();
    for engine in [Engine::Heap, Engine::RocksDb] {
        let mut coordinator =
            keyedstate::checkpoint::CheckpointCoordinator::open(storage.clone(), 2).unwrap();
        let job = TestJob::new(engine, 128, 2);
        job.write_round(0);
        job.write_round(1);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
        checksums.push(
            metadata
                .files()
                .map(|f| (f.size, f.crc32c))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        checksums[0], checksums[1],
        "the canonical format does not depend on the engine"
    );
}

#[test]
fn restore_with_another_max_parallelism_is_refused() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::Heap, 128, 1);
    job.write_round(0);
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
    let work = tempfile::tempdir().unwrap();
    let max_p = keyedstate::MaxParallelism::new(256).unwrap();
    for engine in [Engine::Heap, Engine::RocksDb] {
        let err = match engine {
            Engine::Heap => keyedstate::heap::HeapBackend::restore(
                max_p,
                max_p.full_range(),
                &metadata,
                storage.as_ref(),
            )
            .err(),
            Engine::RocksDb => {
                let config = keyedstate::rocksdb::RocksDbConfig::new(
                    work.path().join("x"),
                    max_p,
                    max_p.full_range(),
                );
                keyedstate::rocksdb::RocksDbBackend::restore(config, &metadata, &storage).err()
            }
        };
        let err = err.expect("refused");
        assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
        assert!(err.to_string().contains("max parallelism 128"), "{err}");
    }
}

/// Writes between the synchronous and the asynchronous part of a snapshot do not leak into it:
/// the task goes on processing while the checkpoint is written.
fn writes_during_the_asynchronous_part_are_not_in_the_snapshot(engine: Engine, kind: SnapshotKind) {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(engine, 128, 2);
    job.write_round(0);
    let at_snapshot = job.digest();
    let pending = coordinator.trigger().unwrap();
    let snapshots: Vec<_> = job
        .backends
        .iter()
        .map(|b| b.snapshot(pending.id(), kind).unwrap())
        .collect();
    job.write_round(1);
    job.write_round(2);
    assert_ne!(job.digest(), at_snapshot);
    let handles = snapshots
        .into_iter()
        .enumerate()
        .map(|(i, s)| s.run(&storage, pending.attempt(), i as u32).unwrap())
        .collect();
    let metadata = coordinator
        .complete(pending, job.max_p, handles)
        .unwrap()
        .clone();
    let restored = TestJob::restored(engine, &metadata, &storage, 2).unwrap();
    assert_eq!(restored.digest(), at_snapshot, "{engine:?} {kind:?}");
}

#[test]
fn snapshots_are_isolated_from_later_writes() {
    writes_during_the_asynchronous_part_are_not_in_the_snapshot(Engine::Heap, SnapshotKind::Full);
    writes_during_the_asynchronous_part_are_not_in_the_snapshot(
        Engine::RocksDb,
        SnapshotKind::Full,
    );
    writes_during_the_asynchronous_part_are_not_in_the_snapshot(
        Engine::RocksDb,
        SnapshotKind::Incremental,
    );
}
