//! RocksDB snapshots. The synchronous part (in `backend.rs`) switches the memtables, to be
//! flushed in the background, and notes the sequence number of the last write they hold (the
//! barrier). The asynchronous part here, while the task goes on writing: waits for those
//! flushes, takes a native RocksDB checkpoint without a further flush (hard links of the live
//! files into `snapshots/chk-<id>` of the instance directory), and refuses it if any of its
//! files holds a write after the barrier (a flush of a later memtable got in first: the next
//! synchronous part then flushes and checkpoints itself); then
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
    /// The next synchronous part flushes and takes the native checkpoint itself: an
    /// asynchronous part found a write after its barrier in its files.
    pub(crate) flush_in_sync: bool,
}

/// What the asynchronous part needs to take the native checkpoint the synchronous part did not.
///
/// Why the check below is sound: a write after the barrier reaches an SST file only by a flush
/// of a later memtable, whose files keep its writes' sequence numbers (all above the barrier's),
/// or by a compaction that reads such a file. No compaction starts between the synchronous
/// part and the native checkpoint: automatic ones are off (`paused`), and the backend's own
/// wait for the asynchronous part. (A RocksDB snapshot at the barrier would keep compactions
/// from zeroing later writes' sequence numbers, but the in-place-update memtable supports no
/// snapshots.) Compactions running at the barrier read only files written before it.
pub(crate) struct Barrier {
    /// The sequence number of the last write before the snapshot.
    pub(crate) sequence: u64,
    /// RocksDB's count of background errors at the barrier (`rocksdb.background-errors`): one
    /// more while waiting for the flush means it failed.
    pub(crate) background_errors: u64,
    /// The instance, with automatic compactions of the switched column families off until the
    /// native checkpoint is taken.
    pub(crate) paused: CompactionsPaused,
}

/// Automatic compactions of some column families, turned off; on again when dropped.
pub(crate) struct CompactionsPaused {
    db: Arc<DB>,
    families: Vec<String>,
}

impl CompactionsPaused {
    /// Turns automatic compactions of `families` off (those already running go on).
    pub(crate) fn new(db: Arc<DB>, families: Vec<String>) -> Result<Self> {
        let mut paused = CompactionsPaused {
            db,
            families: Vec::with_capacity(families.len()),
        };
        for name in families {
            set_auto_compactions(&paused.db, &name, false)?;
            paused.families.push(name);
        }
        Ok(paused)
    }
}

impl Drop for CompactionsPaused {
    fn drop(&mut self) {
        for name in &self.families {
            if let Err(e) = set_auto_compactions(&self.db, name, true) {
                tracing::warn!(error = %e, family = %name, "cannot turn compactions on again");
            }
        }
    }
}

fn set_auto_compactions(db: &DB, name: &str, on: bool) -> Result<()> {
    let cf = db
        .cf_handle(name)
        .ok_or_else(|| Error::corruption(format!("column family '{name}' is missing")))?;
    let value = if on { "false" } else { "true" };
    db.set_options_cf(cf, &[("disable_auto_compactions", value)])
        .map_err(|e| {
            Error::io(
                format!("setting disable_auto_compactions={value} on '{name}'"),
                std::io::Error::other(e.to_string()),
            )
        })
}

impl Barrier {
    /// Waits for the switched memtables to reach SST files, takes the native checkpoint into
    /// `dir` without flushing, and checks that none of its SST files holds a write after the
    /// barrier (each file's largest sequence number, from the live files before and after the
    /// checkpoint; a file seen in neither was written and compacted away meanwhile, and is
    /// refused too).
    fn take_checkpoint(self, checkpoint_id: u64, dir: &std::path::Path) -> Result<()> {
        let (db, sequence) = (&*self.paused.db, self.sequence);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
        for name in &self.paused.families {
            let cf = db
                .cf_handle(name)
                .ok_or_else(|| Error::corruption(format!("column family '{name}' is missing")))?;
            while int_property(db, Some(cf), "rocksdb.num-immutable-mem-table")? > 0 {
                // A flush that failed (a full disk, say) leaves its memtable immutable for good:
                // RocksDB counts it as a background error, and a flush asked for now returns it.
                if int_property(db, None, "rocksdb.background-errors")? > self.background_errors {
                    let cause = db
                        .flush_cf(cf)
                        .err()
                        .map_or_else(|| "a background error".to_owned(), |e| e.to_string());
                    return Err(Error::io(
                        format!("checkpoint {checkpoint_id}: the memtables' flush failed: {cause}"),
                        std::io::Error::other(cause),
                    ));
                }
                if std::time::Instant::now() > deadline {
                    return Err(Error::io(
                        format!("checkpoint {checkpoint_id}: the memtables' flush took over 600 s"),
                        std::io::Error::from(std::io::ErrorKind::TimedOut),
                    ));
                }
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        let seqnos = |files: Vec<crate::ffi::SstMeta>| {
            files
                .into_iter()
                .map(|f| (f.name.trim_start_matches('/').to_owned(), f.largest_seqno))
                .collect::<HashMap<String, u64>>()
        };
        let mut known = seqnos(crate::ffi::live_files(db));
        rocksdb::checkpoint::Checkpoint::new(db)
            .and_then(|c| c.create_checkpoint_with_log_size(dir, u64::MAX))
            .map_err(|e| {
                Error::io(
                    format!("creating a RocksDB checkpoint in {}: {e}", dir.display()),
                    std::io::Error::other(e.to_string()),
                )
            })?;
        known.extend(seqnos(crate::ffi::live_files(db)));
        drop(self.paused);
        let entries = std::fs::read_dir(dir)
            .map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
        for entry in entries {
            let entry =
                entry.map_err(|e| Error::io(format!("cannot list {}", dir.display()), e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".sst") {
                continue;
            }
            match known.get(&name) {
                Some(&seqno) if seqno <= sequence => {}
                _ => {
                    return Err(Error::declined(format!(
                        "checkpoint {checkpoint_id} declined: its file {name} may hold writes \
                         made after its synchronous part (a flush got in first); the next \
                         checkpoint flushes in its synchronous part"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// An integer property of the instance (`cf`: of that column family), 0 when RocksDB has none.
pub(crate) fn int_property(db: &DB, cf: Option<&rocksdb::ColumnFamily>, name: &str) -> Result<u64> {
    match cf {
        Some(cf) => db.property_int_value_cf(cf, name),
        None => db.property_int_value(name),
    }
    .map(|value| value.unwrap_or(0))
    .map_err(|e| {
        Error::io(
            format!("reading the RocksDB property {name}"),
            std::io::Error::other(e.to_string()),
        )
    })
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
    /// `Some` when the native checkpoint is still to take (see [`Barrier`]).
    pub(crate) barrier: Option<Barrier>,
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
        mut self: Box<Self>,
        storage: &Arc<dyn CheckpointStorage>,
        attempt: &CheckpointAttempt,
        subtask: u32,
    ) -> Result<SubtaskHandle> {
        if let Some(barrier) = self.barrier.take() {
            barrier
                .take_checkpoint(self.checkpoint_id, &self.native_dir)
                .inspect_err(|_| lock(&self.registry).flush_in_sync = true)?;
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
