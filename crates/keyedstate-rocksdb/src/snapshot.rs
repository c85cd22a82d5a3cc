//! RocksDB snapshots. The synchronous part (in `backend.rs`) flushes the memtables and takes a
//! native RocksDB checkpoint: hard links of the live files into `snapshots/chk-<id>` of the
//! instance directory. The asynchronous part here, while the task goes on writing:
//! - incremental: uploads the SST files that no confirmed checkpoint already holds to `shared/`
//!   (named `<instance id>-<file>`, unique per instance), and MANIFEST, CURRENT, OPTIONS to the
//!   checkpoint's own directory;
//! - full: opens the native checkpoint read-only and writes the canonical full snapshot.
//!
//! Timers kept in memory ([`TimerStore::Heap`](crate::TimerStore::Heap)) are captured as their
//! key groups' `Arc`s: a full snapshot writes them with the other states; an incremental one
//! writes them as a canonical snapshot of their own beside the SST files (`heap_timers`).

use crate::backend::{open_read_only, scan_key_group_in};
use crate::config::RocksDbConfig;
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
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// SST files of an instance held by checkpoints in one storage, by their local name.
#[derive(Default, Clone)]
pub(crate) struct SstFiles {
    /// `CheckpointStorage::describe` of the storage that holds them.
    pub(crate) storage: String,
    pub(crate) files: HashMap<String, FileRef>,
}

impl SstFiles {
    /// The stored copy of local file `name`, if it is held in `storage`.
    fn get(&self, storage: &str, name: &str) -> Option<&FileRef> {
        if self.storage == storage {
            self.files.get(name)
        } else {
            None
        }
    }
}

/// The SST files of an instance that checkpoints hold.
#[derive(Default)]
pub(crate) struct SstRegistry {
    /// Files of the last completed checkpoint (or of the restored one): later checkpoints into
    /// the same storage reference them without upload. Into another storage, everything is
    /// uploaded.
    pub(crate) confirmed: SstFiles,
    /// Files of checkpoints still in flight, by checkpoint id.
    pub(crate) pending: BTreeMap<u64, SstFiles>,
}

impl SstRegistry {
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

pub(crate) fn lock(registry: &Mutex<SstRegistry>) -> std::sync::MutexGuard<'_, SstRegistry> {
    registry.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the synchronous part captured.
pub(crate) struct RocksDbSnapshot {
    pub(crate) checkpoint_id: u64,
    /// The time expired TTL entries are judged at in a full snapshot (the synchronous part's).
    pub(crate) now: u64,
    pub(crate) kind: SnapshotKind,
    pub(crate) native_dir: PathBuf,
    pub(crate) config: RocksDbConfig,
    pub(crate) states: Vec<StateMeta>,
    pub(crate) key_codec: Option<String>,
    pub(crate) backend_id: String,
    pub(crate) confirmed: SstFiles,
    pub(crate) registry: Arc<Mutex<SstRegistry>>,
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
        self: Box<Self>,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle> {
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
            let reused = name
                .ends_with(".sst")
                .then(|| self.confirmed.get(&storage_id, &name))
                .flatten();
            if let Some(file) = reused {
                files.push((name, Some(file.clone())));
                continue;
            }
            let dest = if name.ends_with(".sst") {
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
        let ssts = files
            .iter()
            .filter(|f| f.name.ends_with(".sst"))
            .map(|f| (f.name.clone(), f.file.clone()));
        let held = SstFiles {
            storage: storage_id,
            files: ssts.collect(),
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
