//! The job layer: the subtasks of one keyed operator seen together. One job-level checkpoint
//! triggers a checkpoint id, takes every subtask's synchronous part, runs the asynchronous parts
//! in parallel, completes `_metadata` through the coordinator and notifies every subtask. The
//! `keyedstate` tool and the tests checkpoint through [`checkpoint`] and its variants; a
//! distributed job (`keyedstate-timely`) runs the same steps apart: [`SubtaskSnapshot`] on every
//! worker, [`complete`] on the one that completes checkpoints, [`notify`] on every worker.

use crate::checkpoint::{
    CheckpointAttempt, CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, LocalRecovery,
    PendingCheckpoint, SubtaskHandle, retain_completed, subtask_storage,
};
use crate::{
    Error, KeyedStateBackend, MaxParallelism, OperatorStateBackend, PendingSnapshot, Result,
    SnapshotKind, StateDigest, StateEngine,
};
use std::sync::Arc;

/// Takes one job-level checkpoint of `backends` (subtask `i` at index `i`): the synchronous part
/// of every subtask, then the asynchronous parts in parallel, then `_metadata`, then the
/// complete notifications. On failure the checkpoint is aborted and the backends notified.
pub fn checkpoint<E: StateEngine + ?Sized>(
    backends: &[KeyedStateBackend<E>],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    checkpoint_with_operator_state(backends, &[], coordinator, kind)
}

/// Like [`checkpoint`], with each subtask's operator state (`operators[i]` of subtask `i`; an
/// empty slice for none).
pub fn checkpoint_with_operator_state<E: StateEngine + ?Sized>(
    backends: &[KeyedStateBackend<E>],
    operators: &[OperatorStateBackend],
    coordinator: &mut CheckpointCoordinator,
    kind: SnapshotKind,
) -> Result<CheckpointMetadata> {
    checkpoint_subtasks(backends, operators, &[], coordinator, kind)
}

/// Like [`checkpoint`], each subtask writing through its local recovery (`local[i]` of subtask
/// `i`, in front of the coordinator's storage), which then keeps that checkpoint's files.
pub fn checkpoint_with_local_recovery<E: StateEngine + ?Sized>(
    backends: &[KeyedStateBackend<E>],
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

fn checkpoint_subtasks<E: StateEngine + ?Sized>(
    backends: &[KeyedStateBackend<E>],
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
    let snapshots: Result<Vec<_>> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            // Operator state is small: its synchronous part is the encoding itself.
            let operator = operators.get(i).map(OperatorStateBackend::snapshot_bytes);
            SubtaskSnapshot::take(b, operator, i as u32, id, kind)
        })
        .collect();
    let snapshots = match snapshots {
        Ok(snapshots) => snapshots,
        Err(e) => {
            coordinator.abort(pending, &[])?;
            notify(backends, id, false)?;
            return Err(e);
        }
    };
    let storage = coordinator.storage().clone();
    let attempt = pending.attempt();
    let results: Vec<Result<SubtaskHandle>> = std::thread::scope(|scope| {
        let workers: Vec<_> = snapshots
            .into_iter()
            .enumerate()
            .map(|(i, snapshot)| {
                let storage = subtask_storage(&storage, local, i);
                scope.spawn(move || snapshot.write(&storage, attempt))
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
        notify(backends, id, false)?;
        return Err(e);
    }
    let completed = complete(coordinator, pending, max_parallelism, handles, local);
    notify(backends, id, completed.is_ok())?;
    completed
}

/// One subtask's part of a checkpoint between its synchronous part (taken on the thread that
/// owns the backend, while records wait) and its asynchronous part (run anywhere: it is `Send`).
/// The job-level checkpoints of this module take every subtask's in turn; a distributed job
/// (`keyedstate-timely`) takes each on its worker and sends the handles to the one that
/// completes the checkpoint.
#[must_use = "a snapshot is written only when written"]
pub struct SubtaskSnapshot {
    subtask: u32,
    snapshot: PendingSnapshot,
    operator_state: Option<Vec<u8>>,
}

impl SubtaskSnapshot {
    /// The synchronous part of subtask `subtask`'s snapshot for checkpoint `checkpoint_id`, with
    /// its operator state (`OperatorStateBackend::snapshot_bytes`, taken at the same point of
    /// the input) if it has any.
    pub fn take<E: StateEngine + ?Sized>(
        backend: &KeyedStateBackend<E>,
        operator_state: Option<Vec<u8>>,
        subtask: u32,
        checkpoint_id: u64,
        kind: SnapshotKind,
    ) -> Result<Self> {
        Ok(SubtaskSnapshot {
            subtask,
            snapshot: backend.snapshot(checkpoint_id, kind)?,
            operator_state,
        })
    }

    /// The asynchronous part: writes the snapshot and the operator state into `attempt` of
    /// `storage`, and returns the subtask's handle.
    pub fn write(
        self,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
    ) -> Result<SubtaskHandle> {
        let mut handle = self.snapshot.run(storage, attempt, self.subtask)?;
        if let Some(bytes) = self.operator_state {
            let path = attempt.operator_state_path(self.subtask);
            handle.operator_state = Some(storage.put_bytes(&path, &bytes)?);
        }
        Ok(handle)
    }
}

/// Completes `pending` from every subtask's handle: writes its `_metadata` through the
/// coordinator, then lets each local recovery keep the checkpoint's files. On failure the
/// coordinator has aborted it. The subtasks are not notified (see [`notify`]).
pub fn complete(
    coordinator: &mut CheckpointCoordinator,
    pending: PendingCheckpoint,
    max_parallelism: MaxParallelism,
    handles: Vec<SubtaskHandle>,
    local: &[Arc<LocalRecovery>],
) -> Result<CheckpointMetadata> {
    // The job's states are the union of the subtasks' (each handle holds its own).
    let metadata = coordinator
        .complete(pending, max_parallelism, handles)?
        .clone();
    retain_completed(local, &metadata);
    Ok(metadata)
}

/// Tells every backend that checkpoint `id` completed (or, with `completed` false, that it
/// was aborted).
pub fn notify<E: StateEngine + ?Sized>(
    backends: &[KeyedStateBackend<E>],
    id: u64,
    completed: bool,
) -> Result<()> {
    backends.iter().try_for_each(|b| {
        if completed {
            b.notify_checkpoint_complete(id)
        } else {
            b.notify_checkpoint_aborted(id)
        }
    })
}

/// The digest of every subtask's state together.
pub fn digest<E: StateEngine + ?Sized>(backends: &[KeyedStateBackend<E>]) -> Result<StateDigest> {
    let mut total = StateDigest::default();
    for backend in backends {
        total.merge(backend.digest()?);
    }
    Ok(total)
}
