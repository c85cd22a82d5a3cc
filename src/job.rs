//! A job's subtasks seen together: open or restore the backend of each subtask of either engine,
//! and take a job-level checkpoint of all of them. Used by the `keyedstate` tool and the tests.

use keyedstate_core::OperatorStateBackend;
use keyedstate_core::checkpoint::storage::checkpoint_dir;
use keyedstate_core::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, SubtaskHandle,
};
use keyedstate_core::{
    Error, KeyedStateBackend, MaxParallelism, Result, SnapshotKind, StateDigest,
};
use keyedstate_heap::HeapBackend;
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use std::path::Path;
use std::sync::Arc;

/// Which engine a subtask runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Heap,
    RocksDb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Heap => "heap",
            Engine::RocksDb => "rocksdb",
        }
    }
}

fn rocksdb_config(
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<RocksDbConfig> {
    let range = max_p.range_for_subtask(parallelism, index)?;
    Ok(RocksDbConfig::new(
        work.join(format!("subtask-{index}")),
        max_p,
        range,
    ))
}

/// A new, empty backend for subtask `index` of `parallelism`; RocksDB instances go below `work`.
pub fn open_subtask(
    engine: Engine,
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<KeyedStateBackend> {
    match engine {
        Engine::Heap => HeapBackend::open(max_p, max_p.range_for_subtask(parallelism, index)?),
        Engine::RocksDb => RocksDbBackend::open(rocksdb_config(max_p, parallelism, index, work)?),
    }
}

/// The backend of subtask `index` of `parallelism`, restored from `metadata` (taken at this or
/// any other parallelism with the same max parallelism).
pub fn restore_subtask(
    engine: Engine,
    metadata: &CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<KeyedStateBackend> {
    let max_p = metadata.max_parallelism;
    match engine {
        Engine::Heap => {
            // RocksDB incremental snapshots reach the heap through a temporary RocksDB instance.
            let range = max_p.range_for_subtask(parallelism, index)?;
            let mut heap = HeapBackend::new(max_p, range)?;
            let scratch = work.join(format!("subtask-{index}-import"));
            let restored = keyedstate_rocksdb::restore_into(&mut heap, metadata, storage, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            restored?;
            Ok(KeyedStateBackend::new(Box::new(heap)))
        }
        Engine::RocksDb => RocksDbBackend::restore(
            rocksdb_config(max_p, parallelism, index, work)?,
            metadata,
            storage,
        ),
    }
}

/// Takes one job-level checkpoint of `backends` (subtask `i` at index `i`): the synchronous part
/// of every subtask, then the asynchronous parts in parallel, then `_metadata`, then the
/// complete notifications. On failure the checkpoint is aborted and the backends notified.
pub fn checkpoint(
    backends: &[KeyedStateBackend],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    checkpoint_with_operator_state(backends, &[], coordinator, kind)
}

/// Like [`checkpoint`], with each subtask's operator state (`operators[i]` of subtask `i`; an
/// empty slice for none).
pub fn checkpoint_with_operator_state(
    backends: &[KeyedStateBackend],
    operators: &[OperatorStateBackend],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    let first = backends
        .first()
        .ok_or_else(|| Error::invalid_argument("a job has at least one subtask"))?;
    let pending = coordinator.trigger()?;
    let id = pending.id();
    let snapshots: Result<Vec<_>> = backends.iter().map(|b| b.snapshot(id, kind)).collect();
    let snapshots = match snapshots {
        Ok(snapshots) => snapshots,
        Err(e) => {
            coordinator.abort(pending, &[])?;
            backends
                .iter()
                .try_for_each(|b| b.notify_checkpoint_aborted(id))?;
            return Err(e);
        }
    };
    // Operator state is small: its synchronous part is the encoding itself.
    let operator_bytes: Vec<Option<Vec<u8>>> = (0..backends.len())
        .map(|i| operators.get(i).map(OperatorStateBackend::snapshot_bytes))
        .collect();
    let storage = coordinator.storage().clone();
    let results: Vec<Result<SubtaskHandle>> = std::thread::scope(|scope| {
        let workers: Vec<_> = snapshots
            .into_iter()
            .enumerate()
            .map(|(i, snapshot)| {
                let storage = storage.clone();
                let operator = operator_bytes[i].clone();
                scope.spawn(move || {
                    let mut handle = snapshot.run(&storage, i as u32)?;
                    if let Some(bytes) = operator {
                        let path = format!("{}/subtask-{i}.operator", checkpoint_dir(id));
                        handle.operator_state = Some(storage.put_bytes(&path, &bytes)?);
                    }
                    Ok(handle)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(Error::invalid_argument("a snapshot panicked")))
            })
            .collect()
    });
    let (handles, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
    let handles: Vec<SubtaskHandle> = handles.into_iter().map(Result::unwrap).collect();
    if let Some(Err(e)) = errors.into_iter().next() {
        coordinator.abort(pending, &handles)?;
        backends
            .iter()
            .try_for_each(|b| b.notify_checkpoint_aborted(id))?;
        return Err(e);
    }
    let metadata = coordinator.complete(pending, first.max_parallelism(), first.states(), handles);
    match metadata {
        Ok(metadata) => {
            let metadata = metadata.clone();
            backends
                .iter()
                .try_for_each(|b| b.notify_checkpoint_complete(id))?;
            Ok(metadata)
        }
        Err(e) => {
            backends
                .iter()
                .try_for_each(|b| b.notify_checkpoint_aborted(id))?;
            Err(e)
        }
    }
}

/// The digest of every subtask's state together.
pub fn digest(backends: &[KeyedStateBackend]) -> Result<StateDigest> {
    let mut total = StateDigest::default();
    for backend in backends {
        total.merge(backend.digest()?);
    }
    Ok(total)
}
