//! The job layer: the subtasks of one keyed operator seen together. One job-level checkpoint
//! triggers a checkpoint id, takes every subtask's synchronous part, runs the asynchronous parts
//! in parallel, completes `_metadata` through the coordinator and notifies every subtask. The
//! `keyedstate` tool, the tests and engine integrations all checkpoint through here.

use crate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, LocalRecovery, SubtaskHandle, retain_completed,
    subtask_storage,
};
use crate::{Error, KeyedStateBackend, OperatorStateBackend, Result, SnapshotKind, StateDigest};
use std::sync::Arc;

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
    checkpoint_subtasks(backends, operators, &[], coordinator, kind)
}

/// Like [`checkpoint`], each subtask writing through its local recovery (`local[i]` of subtask
/// `i`, in front of the coordinator's storage), which then keeps that checkpoint's files.
pub fn checkpoint_with_local_recovery(
    backends: &[KeyedStateBackend],
    local: &[Arc<LocalRecovery>],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    if local.len() != backends.len() {
        return Err(Error::invalid_argument(format!(
            "{} local recovery directories for {} subtasks",
            local.len(),
            backends.len()
        )));
    }
    checkpoint_subtasks(backends, &[], local, coordinator, kind)
}

fn checkpoint_subtasks(
    backends: &[KeyedStateBackend],
    operators: &[OperatorStateBackend],
    local: &[Arc<LocalRecovery>],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    let first = backends
        .first()
        .ok_or_else(|| Error::invalid_argument("a job has at least one subtask"))?;
    let max_parallelism = first.max_parallelism();
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
    let attempt = pending.attempt();
    let results: Vec<Result<SubtaskHandle>> = std::thread::scope(|scope| {
        let workers: Vec<_> = snapshots
            .into_iter()
            .enumerate()
            .map(|(i, snapshot)| {
                let storage = subtask_storage(&storage, local, i);
                let operator = operator_bytes[i].clone();
                scope.spawn(move || {
                    let mut handle = snapshot.run(&storage, attempt, i as u32)?;
                    if let Some(bytes) = operator {
                        let path = attempt.operator_state_path(i as u32);
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
    // The job's states are the union of the subtasks' (each handle holds its own).
    let metadata = coordinator.complete(pending, max_parallelism, handles);
    match metadata {
        Ok(metadata) => {
            let metadata = metadata.clone();
            retain_completed(local, &metadata);
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
