//! The synchronous part of a RocksDB snapshot only switches the memtables; the asynchronous part
//! waits for their flush and takes the native checkpoint. Writes made after the synchronous part
//! are never in the checkpoint: if a flush of them reaches the files first, the checkpoint is
//! declined (`Io`), and the next one flushes in its synchronous part and holds exactly its state.

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{ErrorKind, MaxParallelism, SnapshotKind, ValueStateDescriptor, job};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig, SharedMemory};
use std::sync::Arc;

fn write(backend: &keyedstate_core::KeyedStateBackend, keys: std::ops::Range<u64>, value: u64) {
    let state = backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    for key in keys {
        backend.set_current_key(&key).unwrap();
        state.update(&value).unwrap();
    }
}

/// Restores `metadata` into `dir` and checks that it holds `digest`.
fn assert_restores(
    metadata: &keyedstate_core::checkpoint::CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    dir: std::path::PathBuf,
    digest: keyedstate_core::StateDigest,
) {
    let max_p = metadata.max_parallelism;
    let config = RocksDbConfig::new(dir, max_p, max_p.full_range());
    let restored = RocksDbBackend::restore(config, metadata, storage).unwrap();
    assert_eq!(restored.digest().unwrap(), digest);
    restored.close().unwrap();
}

/// A backend holding keys 0..2,000 with value 1, and a coordinator on a directory beside it.
fn job(
    dir: &std::path::Path,
    config: RocksDbConfig,
) -> (
    keyedstate_core::KeyedStateBackend,
    Arc<dyn CheckpointStorage>,
    CheckpointCoordinator,
) {
    let backend = RocksDbBackend::open(config).unwrap();
    write(&backend, 0..2_000, 1);
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.join("checkpoints")).unwrap());
    let coordinator = CheckpointCoordinator::open(storage.clone(), 2).unwrap();
    (backend, storage, coordinator)
}

#[test]
fn writes_after_the_synchronous_part_are_not_in_the_checkpoint() {
    let max_p = MaxParallelism::new(128).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = RocksDbConfig::new(dir.path().join("a"), max_p, max_p.full_range());
    let (backend, storage, mut coordinator) = job(dir.path(), config);
    let digest = backend.digest().unwrap();
    let pending = coordinator.trigger().unwrap();
    let snapshot = backend
        .snapshot(pending.id(), SnapshotKind::Incremental)
        .unwrap();
    // After the synchronous part, before the asynchronous one: new values in the memtable.
    write(&backend, 0..2_000, 2);
    let handle = snapshot.run(&storage, pending.attempt(), 0).unwrap();
    let metadata = coordinator
        .complete(pending, max_p, vec![handle])
        .unwrap()
        .clone();
    backend
        .notify_checkpoint_complete(metadata.checkpoint_id)
        .unwrap();
    // The state of the synchronous part.
    assert_restores(&metadata, &storage, dir.path().join("b"), digest);
    backend.close().unwrap();
}

#[test]
fn a_flush_before_the_asynchronous_part_declines_the_checkpoint_and_the_next_flushes_in_sync() {
    let max_p = MaxParallelism::new(128).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = RocksDbConfig::new(dir.path().join("a"), max_p, max_p.full_range());
    // A small budget: the writes below fill the memtables and force a flush.
    config.memory = SharedMemory::new(8 << 20).unwrap();
    let (backend, storage, mut coordinator) = job(dir.path(), config);
    let pending = coordinator.trigger().unwrap();
    let snapshot = backend
        .snapshot(pending.id(), SnapshotKind::Incremental)
        .unwrap();
    // Later writes, more than the memtables hold: flushed before the asynchronous part runs.
    write(&backend, 0..400_000, 2);
    let e = snapshot.run(&storage, pending.attempt(), 0).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.is_declined(), "{e}");
    coordinator.abort(pending, &[]).unwrap();
    backend.notify_checkpoint_aborted(1).unwrap();

    // The next checkpoint flushes in its synchronous part, and the one after switches without
    // waiting again: each holds exactly its state, whatever is written after it.
    for (round, into) in [(3, "b"), (4, "c")] {
        let digest = backend.digest().unwrap();
        let metadata = job::checkpoint(
            std::slice::from_ref(&backend),
            &mut coordinator,
            SnapshotKind::Incremental,
        )
        .unwrap();
        write(&backend, 0..2_000, round);
        assert_restores(&metadata, &storage, dir.path().join(into), digest);
    }
    backend.close().unwrap();
}
