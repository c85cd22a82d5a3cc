//! RocksDB snapshots. The synchronous part (in `backend.rs`) captures the instance's live files
//! ([`LiveFileCapture`]): its SST files, MANIFEST and write-ahead log with the bytes they hold at the
//! barrier, file deletions off until the capture is dropped. Every write goes to the log, so the
//! log holds what the memtables do and nothing is flushed for a checkpoint. The asynchronous
//! part, while the task goes on writing, makes a native RocksDB checkpoint of the capture in
//! `snapshots/chk-<id>` of the instance directory (SST and closed log files hard-linked, the
//! MANIFEST and the open log copied up to the captured size, CURRENT written as captured, as
//! RocksDB's own Checkpoint does), drops the capture, and then
//! - incremental: uploads the SST files and closed log files that no confirmed checkpoint
//!   already holds to `shared/` (named `<instance id>-<file>`, unique per instance), and
//!   MANIFEST, CURRENT, OPTIONS and the open log's copy to the checkpoint's own directory; a
//!   restore opens them and RocksDB replays the logs;
//! - full: opens the native checkpoint read-only (which replays the log) and writes the
//!   canonical full snapshot.
//!
//! Timers kept in memory ([`TimerStore::Heap`](crate::TimerStore::Heap)) are captured as their
//! key groups' `Arc`s: a full snapshot writes them with the other states; an incremental one
//! writes them as a canonical snapshot of their own beside the SST files (`heap_timers`).

use crate::backend::{open_read_only, scan_key_group_in};
use crate::config::RocksDbConfig;
use crate::ffi::LiveFileCapture;
use crate::transfer::{Job, run_bounded};
use keyedstate_core::SortedTable;
use keyedstate_core::backend::EntryScan;
use keyedstate_core::checkpoint::CheckpointAttempt;
use keyedstate_core::checkpoint::canonical::write_canonical;
use keyedstate_core::checkpoint::{
    CheckpointStorage, FileRef, NamedFile, SnapshotHandle, SubtaskHandle,
};
use keyedstate_core::{
    AsyncSnapshot, Error, KeyGroupSource, Result, SnapshotKind, StateId, StateMeta,
};
use rocksdb::DB;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Files of an instance in `shared/` of one storage (SST files and closed write-ahead log
/// files), by their local name.
#[derive(Default, Clone)]
pub(crate) struct SharedFiles {
    /// `CheckpointStorage::describe` of the storage that holds them.
    pub(crate) storage: String,
    pub(crate) files: HashMap<String, FileRef>,
}

impl SharedFiles {
    /// The stored copy of local file `name`, if it is held in `storage`.
    fn get(&self, storage: &str, name: &str) -> Option<&FileRef> {
        if self.storage == storage {
            self.files.get(name)
        } else {
            None
        }
    }
}

/// The shared files of an instance that checkpoints hold.
#[derive(Default)]
pub(crate) struct SharedRegistry {
    /// Files of the last completed checkpoint (or of the restored one): later checkpoints into
    /// the same storage reference them without upload. Into another storage, everything is
    /// uploaded.
    pub(crate) confirmed: SharedFiles,
    /// Files of checkpoints still in flight, by checkpoint id.
    pub(crate) pending: BTreeMap<u64, SharedFiles>,
}

/// Makes the native checkpoint of `files` in `dir` (a new directory): what RocksDB's own
/// Checkpoint writes, from a capture taken earlier. Files that may have grown since (the open
/// write-ahead log, the MANIFEST) are copied up to their captured size, CURRENT is written as
/// captured, and the others, immutable, are hard-linked (copied where a link fails).
fn write_native_checkpoint(files: &LiveFileCapture, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    for file in &files.files {
        let dest = dir.join(&file.name);
        let source = file.directory.join(&file.name);
        let failed = |e| {
            Error::io(
                format!("cannot copy {} to {}", source.display(), dest.display()),
                e,
            )
        };
        if let Some(contents) = &file.replacement {
            std::fs::write(&dest, contents).map_err(failed)?;
        } else if file.trim_to_size {
            let mut from = std::fs::File::open(&source).map_err(failed)?;
            let mut to = std::fs::File::create(&dest).map_err(failed)?;
            let copied = std::io::copy(&mut std::io::Read::take(&mut from, file.size), &mut to)
                .map_err(failed)?;
            if copied != file.size {
                return Err(Error::corruption(format!(
                    "{} holds {copied} bytes, fewer than the {} RocksDB listed",
                    source.display(),
                    file.size
                )));
            }
        } else if std::fs::hard_link(&source, &dest).is_err() {
            std::fs::copy(&source, &dest).map_err(failed)?;
        }
    }
    Ok(())
}

impl SharedRegistry {
    pub(crate) fn complete(&mut self, checkpoint_id: u64) {
        // A full snapshot (or one this instance had no part in) holds no SST files: nothing may
        // be referenced without upload after it, since its completion lets retention drop the
        // checkpoints that held the files confirmed before.
        self.confirmed = self.pending.remove(&checkpoint_id).unwrap_or_default();
        // Older in-flight checkpoints can no longer complete after a newer one did.
        self.pending.retain(|&id, _| id > checkpoint_id);
    }

    pub(crate) fn abort(&mut self, checkpoint_id: u64) {
        self.pending.remove(&checkpoint_id);
    }
}

pub(crate) fn lock(registry: &Mutex<SharedRegistry>) -> std::sync::MutexGuard<'_, SharedRegistry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the synchronous part captured.
pub(crate) struct RocksDbSnapshot {
    pub(crate) checkpoint_id: u64,
    /// The time expired TTL entries are judged at in a full snapshot (the synchronous part's).
    pub(crate) now: u64,
    pub(crate) kind: SnapshotKind,
    pub(crate) native_dir: PathBuf,
    /// The live files at the barrier; taken when the native checkpoint is made of them.
    pub(crate) files: Option<LiveFileCapture>,
    /// Those of them that never change under their name ([`crate::ffi::LiveFile::immutable`]):
    /// uploaded to `shared/` once, referenced by later checkpoints.
    pub(crate) immutable: HashSet<String>,
    pub(crate) config: RocksDbConfig,
    pub(crate) states: Vec<StateMeta>,
    pub(crate) key_codec: Option<String>,
    pub(crate) backend_id: String,
    pub(crate) confirmed: SharedFiles,
    pub(crate) registry: Arc<Mutex<SharedRegistry>>,
    /// The states kept in memory, by state id.
    pub(crate) heap_timers: HashMap<StateId, SortedTable>,
}

impl Drop for RocksDbSnapshot {
    fn drop(&mut self) {
        // The native checkpoint is scratch once the files are in storage, or when abandoned.
        let _ = std::fs::remove_dir_all(&self.native_dir);
    }
}

impl AsyncSnapshot for RocksDbSnapshot {
    fn run(
        mut self: Box<Self>,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle> {
        if let Some(files) = self.files.take() {
            // A leftover of an earlier attempt at this id (a crash) is replaced.
            let _ = std::fs::remove_dir_all(&self.native_dir);
            write_native_checkpoint(&files, &self.native_dir)?;
            // RocksDB may delete what compactions and flushes replaced since the barrier.
            drop(files);
        }
        let (snapshot, heap_timers) = match self.kind {
            SnapshotKind::Incremental => (
                self.upload_incremental(storage, attempt, subtask)?,
                self.write_heap_timers(storage, attempt, subtask)?,
            ),
            SnapshotKind::Full => (self.write_full(storage, attempt, subtask)?, None),
        };
        Ok(SubtaskHandle {
            subtask,
            key_group_range: self.config.key_group_range,
            snapshot,
            operator_state: None,
            heap_timers,
            states: self.states.clone(),
            key_codec: self.key_codec.clone(),
        })
    }
}

impl RocksDbSnapshot {
    fn upload_incremental(
        &self,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SnapshotHandle> {
        let entries = std::fs::read_dir(&self.native_dir)
            .map_err(|e| Error::io(format!("cannot list {}", self.native_dir.display()), e))?;
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry
                .map_err(|e| Error::io(format!("cannot list {}", self.native_dir.display()), e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        let storage_id = storage.describe();
        let mut files = Vec::with_capacity(names.len());
        let mut jobs: Vec<Job<FileRef>> = Vec::new();
        let created: Arc<Mutex<Vec<String>>> = Arc::default();
        for name in names {
            let shared = self.immutable.contains(&name);
            let reused = shared
                .then(|| self.confirmed.get(&storage_id, &name))
                .flatten();
            if let Some(file) = reused {
                files.push((name, Some(file.clone())));
                continue;
            }
            let dest = if shared {
                format!("shared/{}-{name}", self.backend_id)
            } else {
                attempt.native_file_path(subtask, &name)
            };
            let source = self.native_dir.join(&name);
            let (storage, created) = (storage.clone(), created.clone());
            jobs.push(Box::new(move || {
                let put = storage.put_file(&dest, &source)?;
                if put.created && dest.starts_with("shared/") {
                    created.lock().unwrap_or_else(|p| p.into_inner()).push(dest);
                }
                Ok(put.file)
            }));
            files.push((name, None));
        }
        let mut results = match run_bounded(jobs, self.config.transfer_concurrency) {
            Ok(results) => results.into_iter(),
            Err(e) => {
                // Nothing references what this attempt created in shared/: remove it. Files it
                // found there already belong to completed checkpoints and stay.
                for path in created.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                    let _ = storage.delete(path);
                }
                return Err(e);
            }
        };
        let files: Vec<NamedFile> = files
            .into_iter()
            .map(|(name, file)| NamedFile {
                name,
                file: file.unwrap_or_else(|| results.next().expect("one result per job")),
            })
            .collect();
        let shared = files
            .iter()
            .filter(|f| self.immutable.contains(&f.name))
            .map(|f| (f.name.clone(), f.file.clone()));
        let held = SharedFiles {
            storage: storage_id,
            files: shared.collect(),
        };
        lock(&self.registry)
            .pending
            .insert(self.checkpoint_id, held);
        Ok(SnapshotHandle::RocksDbIncremental {
            backend_id: self.backend_id.clone(),
            files,
        })
    }

    fn write_full(
        &self,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SnapshotHandle> {
        let db = open_read_only(&self.config, &self.native_dir)?;
        let mut source = ReadOnlySource {
            db: &db,
            states: &self.states,
            prefix_len: self.config.max_parallelism.prefix_len(),
            heap_timers: &self.heap_timers,
        };
        // Streamed into storage: the snapshot never sits in memory or on local disk whole.
        let mut out = storage.create(&attempt.full_snapshot_path(subtask))?;
        write_canonical(
            &mut source,
            self.config.max_parallelism,
            self.config.key_group_range,
            &self.states,
            self.now,
            &mut out,
        )?;
        drop(db);
        Ok(SnapshotHandle::Full {
            file: out.finish()?,
        })
    }

    /// Writes the timers kept in memory as a canonical snapshot (none without such timers).
    fn write_heap_timers(
        &self,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<Option<FileRef>> {
        let mut ids: Vec<StateId> = self.heap_timers.keys().copied().collect();
        if ids.is_empty() {
            return Ok(None);
        }
        ids.sort_unstable();
        let states: Vec<StateMeta> = ids.iter().map(|&id| self.states[id].clone()).collect();
        let mut source = MemorySource(ids.iter().map(|id| &self.heap_timers[id]).collect());
        let mut out = storage.create(&attempt.heap_timers_path(subtask))?;
        write_canonical(
            &mut source,
            self.config.max_parallelism,
            self.config.key_group_range,
            &states,
            self.now,
            &mut out,
        )?;
        out.finish().map(Some)
    }
}

/// The in-memory states of a snapshot, indexed like the state list written with them.
struct MemorySource<'a>(Vec<&'a SortedTable>);

impl KeyGroupSource for MemorySource<'_> {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        self.0[state].scan_group(key_group, f).map(drop)
    }
}

struct ReadOnlySource<'a> {
    db: &'a DB,
    states: &'a [StateMeta],
    prefix_len: usize,
    heap_timers: &'a HashMap<StateId, SortedTable>,
}

impl KeyGroupSource for ReadOnlySource<'_> {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        if let Some(table) = self.heap_timers.get(&state) {
            return table.scan_group(key_group, f).map(drop);
        }
        let name = &self.states[state].name;
        let cf = self
            .db
            .cf_handle(name)
            .ok_or_else(|| Error::corruption(format!("snapshot lacks column family '{name}'")))?;
        scan_key_group_in(self.db, cf, self.prefix_len, key_group, f)
    }
}
