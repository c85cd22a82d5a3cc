//! Job-level checkpoints: the snapshots of all subtasks are completed together into one
//! checkpoint; `retained` completed checkpoints are kept, and a shared file is deleted only when
//! no retained checkpoint references it. One checkpoint is in flight at a time (Flink's default),
//! so no in-flight checkpoint can reference a file that retention deletes.
//!
//! A coordinator deletes only checkpoints it owns: those it completed, and those it took over
//! when it opened (a resumed root's own checkpoints, or the restored one in
//! [`RestoreMode::Claim`]). Every other completed checkpoint of the root is *not owned*: it and
//! every file it references outlive the job, and its id is carried in each `_metadata` the job
//! writes (`not_owned`), so a job resuming from its own latest checkpoint knows them too.

use super::attempt::CheckpointAttempt;
use super::metadata::{
    CheckpointMetadata, METADATA_VERSION, SubtaskHandle, union_key_codec, union_states,
};
use super::storage::{CheckpointStorage, checkpoint_dir};
use crate::error::{Error, Result};
use crate::key_group::MaxParallelism;
use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

/// What a job restored from a checkpoint may do with that checkpoint, as Flink's restore modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestoreMode {
    /// The restored checkpoint (and every other checkpoint already in the root) stays its
    /// owner's: the job never deletes it or a file it references. The job's checkpoints may
    /// reference its shared files; they are never deleted by this job.
    #[default]
    NoClaim,
    /// The restored checkpoint becomes the job's own: later checkpoints subsume it as usual, and
    /// its files go when no retained checkpoint references them. Other checkpoints of the root
    /// stay untouched, as with `NoClaim`.
    Claim,
}

/// A triggered checkpoint: complete it with every subtask's handle, or abort it.
#[must_use = "a triggered checkpoint must be completed or aborted"]
#[derive(Debug)]
pub struct PendingCheckpoint {
    id: u64,
    attempt: CheckpointAttempt,
}

impl PendingCheckpoint {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Where this attempt's subtasks write their own files: hand it to every subtask's
    /// [`crate::PendingSnapshot::run`].
    pub fn attempt(&self) -> &CheckpointAttempt {
        &self.attempt
    }
}

pub struct CheckpointCoordinator {
    storage: Arc<dyn CheckpointStorage>,
    retained: usize,
    /// The owned completed checkpoints that are retained, oldest first.
    completed: VecDeque<CheckpointMetadata>,
    /// Completed checkpoints of the root this job does not own, by id.
    not_owned: BTreeSet<u64>,
    /// The shared files the not-owned checkpoints reference: never deleted.
    protected: BTreeSet<String>,
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
/// (half-written or aborted), the files of other attempts in a completed one's directory (a
/// writer that lost the race for the id and died before cleaning up), and files in `shared/` no
/// `_metadata` names. Only safe while no job writes checkpoints to `storage`. Refuses to run if
/// any `_metadata` is unreadable, since the files it references are then unknown.
pub fn collect_garbage(storage: &dyn CheckpointStorage, dry_run: bool) -> Result<GcReport> {
    let mut completed = Vec::new();
    let mut completed_files = Vec::new();
    let mut report = GcReport::default();
    for (id, done) in storage.checkpoint_dirs()? {
        let files = storage.list_files(&checkpoint_dir(id))?;
        if done {
            completed.push(
                load_metadata(storage, id).map_err(|e| e.context("refusing to collect garbage"))?,
            );
            completed_files.extend(files);
        } else {
            report.removed_checkpoints.push(id);
            report.removed_files.extend(files);
        }
    }
    let referenced: BTreeSet<&str> = completed
        .iter()
        .flat_map(|c| c.files())
        .map(|f| f.path.as_str())
        .collect();
    let metadata = format!("/{}", super::storage::METADATA_FILE);
    let unreferenced: Vec<String> = completed_files
        .into_iter()
        .chain(storage.list_files("shared")?)
        .filter(|path| !referenced.contains(path.as_str()) && !path.ends_with(&metadata))
        .collect();
    if !dry_run {
        for id in &report.removed_checkpoints {
            storage.delete_dir(&checkpoint_dir(*id))?;
        }
        for path in &unreferenced {
            storage.delete(path)?;
        }
    }
    report.removed_files.extend(unreferenced);
    Ok(report)
}

impl CheckpointCoordinator {
    /// Opens the checkpoints in `storage` for a job that resumes them (or starts on an empty
    /// root): it owns every completed checkpoint there except those its latest checkpoint lists as
    /// not owned; keeps the latest `retained` owned ones and removes older ones, half-written ones
    /// and shared files no completed checkpoint references (what a crash may leave). Checkpoint
    /// ids continue after the highest one present.
    pub fn open(storage: Arc<dyn CheckpointStorage>, retained: usize) -> Result<Self> {
        let present = Self::present(storage.as_ref(), retained)?;
        let not_owned: BTreeSet<u64> = present
            .last()
            .map(|latest| latest.not_owned.iter().copied().collect())
            .unwrap_or_default();
        Self::with_owned(storage, retained, present, not_owned)
    }

    /// Opens the checkpoints in `storage` for a job restored from `restored` (a checkpoint of
    /// this root or of another one) in `mode`. No completed checkpoint already in the root is
    /// deleted but, with [`RestoreMode::Claim`], `restored` itself once later checkpoints subsume
    /// it. Half-written checkpoints and shared files no completed checkpoint references are
    /// removed.
    pub fn open_restored(
        storage: Arc<dyn CheckpointStorage>,
        retained: usize,
        restored: &CheckpointMetadata,
        mode: RestoreMode,
    ) -> Result<Self> {
        let present = Self::present(storage.as_ref(), retained)?;
        let claimed = mode == RestoreMode::Claim
            && present
                .iter()
                .any(|c| c.checkpoint_id == restored.checkpoint_id && c == restored);
        let not_owned = present
            .iter()
            .map(|c| c.checkpoint_id)
            .filter(|&id| !(claimed && id == restored.checkpoint_id))
            .collect();
        let mut coordinator = Self::with_owned(storage, retained, present, not_owned)?;
        coordinator.continue_after(restored.checkpoint_id);
        Ok(coordinator)
    }

    /// The completed checkpoints of `storage`, oldest first, after removing what no completed
    /// checkpoint references.
    fn present(
        storage: &dyn CheckpointStorage,
        retained: usize,
    ) -> Result<Vec<CheckpointMetadata>> {
        if retained == 0 {
            return Err(Error::invalid_argument(
                "at least one completed checkpoint must be retained",
            ));
        }
        collect_garbage(storage, false)?;
        let mut present = Vec::new();
        for (id, done) in storage.checkpoint_dirs()? {
            if done {
                present.push(load_metadata(storage, id)?);
            }
        }
        present.sort_by_key(|c| c.checkpoint_id);
        Ok(present)
    }

    /// A coordinator owning the checkpoints of `present` that are not in `not_owned`.
    fn with_owned(
        storage: Arc<dyn CheckpointStorage>,
        retained: usize,
        present: Vec<CheckpointMetadata>,
        not_owned: BTreeSet<u64>,
    ) -> Result<Self> {
        let next_id = storage
            .checkpoint_dirs()?
            .iter()
            .map(|(id, _)| id + 1)
            .max()
            .unwrap_or(1);
        let (foreign, owned): (Vec<_>, Vec<_>) = present
            .into_iter()
            .partition(|c| not_owned.contains(&c.checkpoint_id));
        let mut coordinator = CheckpointCoordinator {
            storage,
            retained,
            completed: owned.into(),
            // Only those still present: one deleted by its owner needs no protection.
            not_owned: foreign.iter().map(|c| c.checkpoint_id).collect(),
            protected: shared_paths(&foreign),
            next_id,
            in_flight: None,
        };
        coordinator.enforce_retention()?;
        Ok(coordinator)
    }

    /// Shared files no retained owned checkpoint references and no not-owned one either.
    fn kept(&self) -> BTreeSet<String> {
        let mut keep = shared_paths(&self.completed);
        keep.extend(self.protected.iter().cloned());
        keep
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
        Ok(PendingCheckpoint {
            id,
            attempt: CheckpointAttempt::new(id),
        })
    }

    /// Starts `attempt`'s checkpoint, whose id and name the workers of a distributed job agreed
    /// on (its id at least the next one this coordinator would pick). Fails while another is in
    /// flight.
    pub fn trigger_as(&mut self, attempt: CheckpointAttempt) -> Result<PendingCheckpoint> {
        let id = attempt.checkpoint_id();
        if let Some(in_flight) = self.in_flight {
            return Err(Error::invalid_argument(format!(
                "checkpoint {in_flight} is still in flight"
            )));
        }
        if id < self.next_id {
            return Err(Error::invalid_argument(format!(
                "checkpoint {id} is not after the checkpoints of {} (next id {})",
                self.storage.describe(),
                self.next_id
            )));
        }
        self.next_id = id + 1;
        self.in_flight = Some(id);
        Ok(PendingCheckpoint { id, attempt })
    }

    /// Writes the `_metadata` of `pending` from every subtask's handle (ordered by subtask), then
    /// drops checkpoints beyond `retained`. After this returns the checkpoint exists. Its states
    /// are the union of the subtasks' states; a state two subtasks registered differently, or
    /// keys of two codecs, fail the checkpoint with `IncompatibleState` (and abort it).
    pub fn complete(
        &mut self,
        pending: PendingCheckpoint,
        max_parallelism: MaxParallelism,
        mut subtasks: Vec<SubtaskHandle>,
    ) -> Result<&CheckpointMetadata> {
        subtasks.sort_by_key(|h| h.subtask);
        let union =
            union_states(&subtasks).and_then(|states| Ok((states, union_key_codec(&subtasks)?)));
        let (states, key_codec) = match union {
            Ok(union) => union,
            Err(e) => {
                let id = pending.id;
                self.abort(pending, &subtasks)?;
                return Err(e.context(format_args!("checkpoint {id}")));
            }
        };
        let metadata = CheckpointMetadata {
            version: METADATA_VERSION,
            checkpoint_id: pending.id,
            max_parallelism,
            states,
            subtasks,
            not_owned: self.not_owned.iter().copied().collect(),
            key_codec,
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
            match load_metadata(self.storage.as_ref(), pending.id) {
                // Ours landed and only the answer was lost (a timeout): the checkpoint exists.
                Ok(found) if found == metadata => {
                    tracing::warn!(error = %e, id = pending.id, "the write of _metadata reported an error, but it is there");
                }
                // Another writer completed this id first (the conditional write refused ours),
                // or nothing is there: an abort removes only this attempt's files, so the other
                // writer's `_metadata` and files stay.
                _ => {
                    let handles = metadata.subtasks.clone();
                    self.abort(pending, &handles)?;
                    return Err(e.context(format_args!("checkpoint {}", metadata.checkpoint_id)));
                }
            }
        }
        self.in_flight = None;
        self.completed.push_back(metadata);
        // The checkpoint exists now, whatever happens to the subsumed ones: a deletion that
        // fails leaves garbage, which the next opening of the root collects, never a failed
        // checkpoint (as Flink only logs a failed discard).
        if let Err(e) = self.enforce_retention() {
            tracing::warn!(error = %e, "cannot delete a subsumed checkpoint; left for garbage collection");
        }
        Ok(self.completed.back().expect("just pushed"))
    }

    /// Gives up `pending`: removes its attempt's directory, the shared files that the subtasks
    /// which did finish uploaded for it and no retained checkpoint references, and `chk-<id>/`
    /// if that leaves it empty. Another writer's files of the same id stay.
    pub fn abort(&mut self, pending: PendingCheckpoint, finished: &[SubtaskHandle]) -> Result<()> {
        self.in_flight = None;
        let keep = self.kept();
        self.storage.delete_dir(&pending.attempt.dir())?;
        for file in finished.iter().flat_map(SubtaskHandle::files) {
            if file.is_shared() && !keep.contains(&file.path) {
                self.storage.delete(&file.path)?;
            }
        }
        self.storage.remove_empty_dir(&checkpoint_dir(pending.id))
    }

    fn enforce_retention(&mut self) -> Result<()> {
        while self.completed.len() > self.retained {
            let dropped = self.completed.pop_front().expect("more than retained");
            let keep = self.kept();
            let dir = checkpoint_dir(dropped.checkpoint_id);
            // `_metadata` first, as Flink discards a checkpoint: from then on no reader takes it
            // for a complete checkpoint, so one that finds a file missing can tell the checkpoint
            // was subsumed rather than corrupt (`keyedstate verify` of a root a job writes).
            self.storage.delete(&format!(
                "{dir}/{}",
                crate::checkpoint::storage::METADATA_FILE
            ))?;
            self.storage.delete_dir(&dir)?;
            for file in dropped.files() {
                if file.is_shared() && !keep.contains(&file.path) {
                    self.storage.delete(&file.path)?;
                }
            }
        }
        Ok(())
    }
}
