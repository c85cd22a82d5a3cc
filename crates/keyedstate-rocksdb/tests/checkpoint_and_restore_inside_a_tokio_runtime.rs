//! An async stream processor drives the backend from inside its own tokio runtime: the
//! snapshot's asynchronous part and the restore work there (multi-threaded and current-thread
//! runtimes) as outside any runtime.

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{MaxParallelism, SnapshotKind, ValueStateDescriptor, job};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use std::path::Path;
use std::sync::Arc;

/// Writes, checkpoints (incremental, then full), restores each and reads back.
fn checkpoint_and_restore(dir: &Path) {
    let max_p = MaxParallelism::new(128).unwrap();
    let range = max_p.full_range();
    let backend = RocksDbBackend::open(RocksDbConfig::new(dir.join("a"), max_p, range)).unwrap();
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    for key in 0..100u64 {
        backend.set_current_key(&key).unwrap();
        value.update(&(key * 3)).unwrap();
    }
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.join("checkpoints")).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 2).unwrap();
    for (n, kind) in [SnapshotKind::Incremental, SnapshotKind::Full]
        .into_iter()
        .enumerate()
    {
        let metadata =
            job::checkpoint(std::slice::from_ref(&backend), &mut coordinator, kind).unwrap();
        let config = RocksDbConfig::new(dir.join(format!("restored-{n}")), max_p, range);
        let restored = RocksDbBackend::restore(config, &metadata, &storage).unwrap();
        let value = restored
            .value_state(&ValueStateDescriptor::<u64>::new("v"))
            .unwrap();
        restored.set_current_key(&7u64).unwrap();
        assert_eq!(value.get().unwrap(), Some(21));
        restored.close().unwrap();
    }
    backend.close().unwrap();
}

#[test]
fn checkpoint_and_restore_outside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    checkpoint_and_restore(dir.path());
}

#[test]
fn checkpoint_and_restore_inside_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async { checkpoint_and_restore(dir.path()) });
}

#[test]
fn checkpoint_and_restore_inside_a_current_thread_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async { checkpoint_and_restore(dir.path()) });
}
