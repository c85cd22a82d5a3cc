//! Job-level checkpoints: the snapshots of all subtasks are completed together into one
//! checkpoint; `retained` completed checkpoints are kept, and a shared file is deleted only when
//! no retained checkpoint references it. One checkpoint is in flight at a time (Flink's default),
//! so no in-flight checkpoint can reference a file that retention deletes.

use super::metadata::{CheckpointMetadata, METADATA_VERSION, SubtaskHandle};
use super::storage::{CheckpointStorage, checkpoint_dir};
use crate::descriptor::StateMeta;
use crate::error::{Error, Result};
use crate::key_group::MaxParallelism;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// A triggered checkpoint: complete it with every subtask's handle, or abort it.
#[must_use = "a triggered checkpoint must be completed or aborted"]
#[derive(Debug)]
pub struct PendingCheckpoint {
    id: u64,
}

impl PendingCheckpoint {
    pub fn id(&self) -> u64 {
        self.id
    }
}

pub struct CheckpointCoordinator {
    storage: Arc<dyn CheckpointStorage>,
    retained: usize,
    completed: VecDeque<CheckpointMetadata>,
    next_id: u64,
    in_flight: Option<u64>,
}

/// Reads and checks the metadata of checkpoint `id`.
pub fn load_metadata(storage: &dyn CheckpointStorage, id: u64) -> Result<CheckpointMetadata> {
    let bytes = storage.read_metadata(id)?;
    let origin = format!("{}/{}/_metadata", storage.describe(), checkpoint_dir(id));
    let metadata = CheckpointMetadata::decode(&bytes, &origin)?;
    if metadata.checkpoint_id != id {
        return Err(Error::corruption(format!(
            "{origin} belongs to checkpoint {}",
            metadata.checkpoint_id
        )));
    }
    Ok(metadata)
}

/// The latest completed checkpoint in `storage`.
pub fn load_latest(storage: &dyn CheckpointStorage) -> Result<CheckpointMetadata> {
    let latest = storage
        .checkpoint_dirs()?
        .into_iter()
        .filter(|(_, done)| *done)
        .map(|(id, _)| id)
        .max();
    match latest {
        Some(id) => load_metadata(storage, id),
        None => Err(Error::invalid_argument(format!(
            "no completed checkpoint in {}",
            storage.describe()
        ))),
    }
}

fn shared_paths<'a>(
    checkpoints: impl IntoIterator<Item = &'a CheckpointMetadata>,
) -> BTreeSet<String> {
    checkpoints
        .into_iter()
        .flat_map(|c| c.files())
        .filter(|f| f.is_shared())
        .map(|f| f.path.clone())
        .collect()
}

/// What a garbage collection removed (or, in a dry run, would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    pub removed_files: Vec<String>,
    pub removed_checkpoints: Vec<u64>,
}

/// Removes what no completed checkpoint references: `chk-<id>` directories without `_metadata`
/// (half-written or aborted), and files in `shared/` no `_metadata` names. Only safe while no
/// job writes checkpoints to `storage`. Refuses to run if any `_metadata` is unreadable, since the
/// files it references are then unknown.
pub fn collect_garbage(storage: &dyn CheckpointStorage, dry_run: bool) -> Result<GcReport> {
    let mut completed = Vec::new();
    let mut report = GcReport::default();
    for (id, done) in storage.checkpoint_dirs()? {
        if done {
            completed.push(
                load_metadata(storage, id).map_err(|e| e.context("refusing to collect garbage"))?,
            );
        } else {
            report.removed_checkpoints.push(id);
            report
                .removed_files
                .extend(storage.list_files(&checkpoint_dir(id))?);
        }
    }
    let referenced = shared_paths(&completed);
    for path in storage.list_files("shared")? {
        if !referenced.contains(&path) {
            report.removed_files.push(path);
        }
    }
    if !dry_run {
        for id in &report.removed_checkpoints {
            storage.delete_dir(&checkpoint_dir(*id))?;
        }
        for path in report
            .removed_files
            .iter()
            .filter(|p| p.starts_with("shared/"))
        {
            storage.delete(path)?;
        }
    }
    Ok(report)
}

impl CheckpointCoordinator {
    /// Opens the checkpoints in `storage`: keeps the latest `retained` completed ones, and
    /// removes older ones, half-written ones and shared files none of them references (what a
    /// crash may leave). Checkpoint ids continue after the highest one present.
    pub fn open(storage: Arc<dyn CheckpointStorage>, retained: usize) -> Result<Self> {
        if retained == 0 {
            return Err(Error::invalid_argument(
                "at least one completed checkpoint must be retained",
            ));
        }
        let dirs = storage.checkpoint_dirs()?;
        let next_id = dirs.iter().map(|(id, _)| id + 1).max().unwrap_or(1);
        collect_garbage(storage.as_ref(), false)?;
        let mut completed = VecDeque::new();
        for (id, done) in storage.checkpoint_dirs()? {
            if done {
                completed.push_back(load_metadata(storage.as_ref(), id)?);
            }
        }
        let mut coordinator = CheckpointCoordinator {
            storage,
            retained,
            completed,
            next_id,
            in_flight: None,
        };
        coordinator.enforce_retention()?;
        Ok(coordinator)
    }

    pub fn storage(&self) -> &Arc<dyn CheckpointStorage> {
        &self.storage
    }

    /// Retained completed checkpoints, oldest first.
    pub fn completed(&self) -> impl Iterator<Item = &CheckpointMetadata> {
        self.completed.iter()
    }

    pub fn latest(&self) -> Option<&CheckpointMetadata> {
        self.completed.back()
    }

    /// Makes the next checkpoint id at least `id + 1` (a rescaled copy keeps its source's id).
    pub fn continue_after(&mut self, id: u64) {
        self.next_id = self.next_id.max(id + 1);
    }

    /// Starts checkpoint `next id`. Fails while another is in flight.
    pub fn trigger(&mut self) -> Result<PendingCheckpoint> {
        if let Some(id) = self.in_flight {
            return Err(Error::invalid_argument(format!(
                "checkpoint {id} is still in flight"
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight = Some(id);
        Ok(PendingCheckpoint { id })
    }

    /// Writes the `_metadata` of `pending` from every subtask's handle (ordered by subtask), then
    /// drops checkpoints beyond `retained`. After this returns the checkpoint exists.
    pub fn complete(
        &mut self,
        pending: PendingCheckpoint,
        max_parallelism: MaxParallelism,
        states: Vec<StateMeta>,
        mut subtasks: Vec<SubtaskHandle>,
    ) -> Result<&CheckpointMetadata> {
        subtasks.sort_by_key(|h| h.subtask);
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            checkpoint_id: pending.id,
            max_parallelism,
            states,
            subtasks,
        };
        // The phase's bytes: everything the completed checkpoint references.
        let written = crate::phase::traced(
            "checkpoint.complete",
            pending.id,
            || {
                metadata.validate()?;
                self.storage.write_metadata(pending.id, &metadata.encode()?)
            },
            |()| metadata.files().map(|f| f.size).sum(),
        );
        if let Err(e) = written {
            let handles = metadata.subtasks.clone();
            self.abort(pending, &handles)?;
            return Err(e.context(format_args!("checkpoint {}", metadata.checkpoint_id)));
        }
        self.in_flight = None;
        self.completed.push_back(metadata);
        self.enforce_retention()?;
        Ok(self.completed.back().expect("just pushed"))
    }

    /// Gives up `pending`: removes its directory and the shared files that the subtasks which
    /// did finish uploaded for it and no retained checkpoint references.
    pub fn abort(&mut self, pending: PendingCheckpoint, finished: &[SubtaskHandle]) -> Result<()> {
        self.in_flight = None;
        let keep = shared_paths(&self.completed);
        self.storage.delete_dir(&checkpoint_dir(pending.id))?;
        for file in finished.iter().flat_map(SubtaskHandle::files) {
            if file.is_shared() && !keep.contains(&file.path) {
                self.storage.delete(&file.path)?;
            }
        }
        Ok(())
    }

    fn enforce_retention(&mut self) -> Result<()> {
        while self.completed.len() > self.retained {
            let dropped = self.completed.pop_front().expect("more than retained");
            let keep = shared_paths(&self.completed);
            self.storage
                .delete_dir(&checkpoint_dir(dropped.checkpoint_id))?;
            for file in dropped.files() {
                if file.is_shared() && !keep.contains(&file.path) {
                    self.storage.delete(&file.path)?;
                }
            }
        }
        Ok(())
    }
}
