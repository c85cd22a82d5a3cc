//! A RocksDB checkpoint flushes nothing: its synchronous part captures the live files (the log
//! with the bytes written so far), its asynchronous part copies them while the task writes on,
//! and a restore replays the log. Writes made after the synchronous part are never in it,
//! whatever RocksDB flushes or compacts meanwhile; a log longer than `checkpoint_wal_bytes` has
//! the memtables flushed, so that later checkpoints hold SST files instead.

use keyedstate_core::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage, NamedFile,
    SnapshotHandle,
};
use keyedstate_core::{KeyedStateBackend, MaxParallelism, SnapshotKind, ValueStateDescriptor};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig, SharedMemory};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn write(backend: &KeyedStateBackend, keys: std::ops::Range<u64>, value: u64) {
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
    metadata: &CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    dir: PathBuf,
    digest: keyedstate_core::StateDigest,
) {
    let max_p = metadata.max_parallelism;
    let config = RocksDbConfig::new(dir, max_p, max_p.full_range());
    let restored = RocksDbBackend::restore(config, metadata, storage).unwrap();
    assert_eq!(restored.digest().unwrap(), digest);
    restored.close().unwrap();
}

fn config(dir: &Path) -> RocksDbConfig {
    let max_p = MaxParallelism::new(128).unwrap();
    RocksDbConfig::new(dir.join("a"), max_p, max_p.full_range())
}

/// A backend holding keys 0..2,000 with value 1, and a coordinator on a directory beside it.
fn job(
    dir: &Path,
    config: RocksDbConfig,
) -> (
    KeyedStateBackend,
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

/// One checkpoint of `backend`, with `between` run after its synchronous part and before its
/// asynchronous one, completed.
fn checkpoint_around(
    backend: &KeyedStateBackend,
    storage: &Arc<dyn CheckpointStorage>,
    coordinator: &mut CheckpointCoordinator,
    between: impl FnOnce(),
) -> CheckpointMetadata {
    let pending = coordinator.trigger().unwrap();
    let snapshot = backend
        .snapshot(pending.id(), SnapshotKind::Incremental)
        .unwrap();
    between();
    let handle = snapshot.run(storage, pending.attempt(), 0).unwrap();
    let metadata = coordinator
        .complete(pending, MaxParallelism::new(128).unwrap(), vec![handle])
        .unwrap()
        .clone();
    backend
        .notify_checkpoint_complete(metadata.checkpoint_id)
        .unwrap();
    metadata
}

/// The files of the only subtask of an incremental checkpoint.
fn files(metadata: &CheckpointMetadata) -> &[NamedFile] {
    match &metadata.subtasks[0].snapshot {
        SnapshotHandle::RocksDbIncremental { files, .. } => files,
        other => panic!("not an incremental snapshot: {other:?}"),
    }
}

/// Bytes of the checkpoint's write-ahead log files.
fn log_bytes(metadata: &CheckpointMetadata) -> u64 {
    files(metadata)
        .iter()
        .filter(|f| f.name.ends_with(".log"))
        .map(|f| f.file.size)
        .sum()
}

fn sst_count(metadata: &CheckpointMetadata) -> usize {
    files(metadata)
        .iter()
        .filter(|f| f.name.ends_with(".sst"))
        .count()
}

#[test]
fn unflushed_writes_are_in_the_log_the_checkpoint_copies_and_a_restore_replays() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, storage, mut coordinator) = job(dir.path(), config(dir.path()));
    let digest = backend.digest().unwrap();
    let metadata = checkpoint_around(&backend, &storage, &mut coordinator, || {});
    // 2,000 writes stay in the memtable: the checkpoint holds them only in its log.
    assert_eq!(sst_count(&metadata), 0);
    assert!(log_bytes(&metadata) > 2_000 * 8, "{:?}", files(&metadata));
    assert_restores(&metadata, &storage, dir.path().join("b"), digest);
    backend.close().unwrap();
}

#[test]
fn writes_after_the_synchronous_part_are_not_in_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, storage, mut coordinator) = job(dir.path(), config(dir.path()));
    let digest = backend.digest().unwrap();
    // After the synchronous part, before the asynchronous one: new values in the same log.
    let metadata = checkpoint_around(&backend, &storage, &mut coordinator, || {
        write(&backend, 0..2_000, 2)
    });
    // The state of the synchronous part.
    assert_restores(&metadata, &storage, dir.path().join("b"), digest);
    backend.close().unwrap();
}

#[test]
fn flushes_and_compactions_before_the_asynchronous_part_leave_the_checkpoint_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // A small budget: the writes below fill the memtables, which RocksDB flushes and compacts
    // (and then drops the logs and files they replaced) before the asynchronous part runs.
    config.memory = SharedMemory::new(8 << 20).unwrap();
    let (backend, storage, mut coordinator) = job(dir.path(), config);
    let digest = backend.digest().unwrap();
    let metadata = checkpoint_around(&backend, &storage, &mut coordinator, || {
        write(&backend, 0..400_000, 2);
        backend.compact().unwrap();
    });
    assert_restores(&metadata, &storage, dir.path().join("b"), digest);

    // The checkpoints after it hold exactly their state too, whatever is written after them.
    for (round, into) in [(3, "c"), (4, "d")] {
        let digest = backend.digest().unwrap();
        let metadata = checkpoint_around(&backend, &storage, &mut coordinator, || {});
        write(&backend, 0..2_000, round);
        assert_restores(&metadata, &storage, dir.path().join(into), digest);
    }
    backend.close().unwrap();
}

#[test]
fn a_log_longer_than_the_limit_is_flushed_and_later_checkpoints_hold_sst_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.checkpoint_wal_bytes = 1024;
    let (backend, storage, mut coordinator) = job(dir.path(), config);
    let digest = backend.digest().unwrap();
    let first = checkpoint_around(&backend, &storage, &mut coordinator, || {});
    assert!(log_bytes(&first) > 1024);
    assert_restores(&first, &storage, dir.path().join("b"), digest);
    // The first checkpoint had the memtable flushed in the background: a later one (once the
    // flush is done) holds the writes in SST files and a log of nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let later = loop {
        let metadata = checkpoint_around(&backend, &storage, &mut coordinator, || {});
        if log_bytes(&metadata) == 0 {
            break metadata;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the log was never flushed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(sst_count(&later) > 0);
    assert_restores(&later, &storage, dir.path().join("c"), digest);
    backend.close().unwrap();
}

#[test]
fn a_dropped_snapshot_lets_rocksdb_delete_replaced_files_again() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path());
    let db_dir = config.path.join("db");
    let (backend, _storage, mut coordinator) = job(dir.path(), config);
    let sst_files = || {
        std::fs::read_dir(&db_dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("sst".as_ref()))
            .count()
    };
    // Twice, so that the files are compacted (one per key group), not moved as flushed.
    backend.compact().unwrap();
    write(&backend, 0..2_000, 2);
    backend.compact().unwrap();
    let compacted = sst_files();
    assert!(compacted > 1);
    // A synchronous part whose asynchronous part never runs: its capture turned deletions off.
    let pending = coordinator.trigger().unwrap();
    let snapshot = backend
        .snapshot(pending.id(), SnapshotKind::Incremental)
        .unwrap();
    write(&backend, 0..2_000, 3);
    backend.compact().unwrap();
    // The files the capture named outlive the compaction that replaced them...
    assert!(sst_files() > compacted, "{} files", sst_files());
    drop(snapshot);
    // ...and go once it is dropped, at the next compaction at the latest.
    write(&backend, 0..2_000, 4);
    backend.compact().unwrap();
    assert_eq!(sst_files(), compacted);
    backend.close().unwrap();
}
