//! Restore, at the same parallelism or with rescale.
//!
//! Restoring key-group range R from a checkpoint:
//! - the base is the incremental handle with the largest overlap with R: its files are fetched
//!   (hard links where they can be) and opened as they are; if its range is not exactly R, it is
//!   clipped to R (`clip_to`: whole files outside R deleted unread, the rest
//!   outside deleted with range deletions that a compaction of the L0 files then drops with
//!   what they cover);
//! - every other incremental handle overlapping R is moved in
//!   ([`RescaleMethod::Files`]): its instance is opened beside, clipped to R the same way, and
//!   its live SST files are ingested as RocksDB generated them, oldest first, moved by hard
//!   link; where that cannot be done, and for full handles, the entries of R's key groups are
//!   read (a temporary read-only instance, or the canonical file), written into one SST file per
//!   state and ingested (or, with [`RescaleMethod::WriteBatch`], written in batches without the
//!   WAL);
//! - without an incremental handle, an empty instance imports every overlapping handle.
//!
//! The instance registers every state of the checkpoint (the union of the subtasks' states, as a
//! subtask may register a state lazily), and reads each handle with the states that handle holds.

use crate::RocksDbBackend;
use crate::backend::{existing_column_families, open_read_only, scan_key_group_in};
use crate::config::{RescaleMethod, RocksDbConfig, TimerStore};
use crate::error::map_err;
use crate::snapshot::SharedFiles;
use crate::transfer::{Job, run_bounded};
use keyedstate_core::backend::put_raw_entry;
use keyedstate_core::checkpoint::canonical::{CanonicalSnapshot, restore_canonical};
use keyedstate_core::checkpoint::restore::{adopt_key_codec, check_max_parallelism};
use keyedstate_core::checkpoint::storage::{check_local_file, check_relative_path};
use keyedstate_core::checkpoint::{
    CheckpointMetadata, CheckpointStorage, NamedFile, SnapshotHandle, SubtaskHandle,
};
use keyedstate_core::key_layout::{put_entry_key, put_key_group};
use keyedstate_core::phase::traced;
use keyedstate_core::timers::is_timer_state;
use keyedstate_core::{
    EntryKey, Error, KeyGroupRange, KeyedStateBackend, RawEntry, Result, StateBackend, StateKind,
    StateMeta,
};
use rocksdb::{
    BottommostLevelCompaction, CompactOptions, DB, FlushOptions, IngestExternalFileOptions,
    Options, SstFileWriter, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Entries per write batch on the write-batch path.
const BATCH_ENTRIES: usize = 16 * 1024;

impl RocksDbBackend {
    /// An instance holding `config.key_group_range`, restored from checkpoint `metadata` at any
    /// parallelism (see the module documentation).
    pub fn restore(
        config: RocksDbConfig,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
    ) -> Result<KeyedStateBackend> {
        Ok(KeyedStateBackend::new(Box::new(Self::restore_engine(
            config, metadata, storage,
        )?)))
    }

    /// Like [`Self::restore`], returning the engine itself.
    pub fn restore_engine(
        mut config: RocksDbConfig,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
    ) -> Result<Self> {
        // No row cache for any instance a restore opens, empty ones included (see
        // `RocksDbConfig::row_cache`).
        config.row_cache = false;
        let range = config.key_group_range;
        if metadata.max_parallelism != config.max_parallelism {
            return Err(Error::incompatible_state(format!(
                "checkpoint {} has max parallelism {}, the backend {}: key groups cannot be remapped",
                metadata.checkpoint_id, metadata.max_parallelism, config.max_parallelism
            )));
        }
        let overlapping: Vec<&SubtaskHandle> = metadata
            .subtasks
            .iter()
            .filter(|h| h.key_group_range.intersect(range).is_some())
            .collect();
        let threshold = config.restore_overlap_fraction_threshold;
        let base = overlapping
            .iter()
            .copied()
            .filter(|h| matches!(h.snapshot, SnapshotHandle::RocksDbIncremental { .. }))
            .filter(|h| {
                let overlap = h
                    .key_group_range
                    .intersect(range)
                    .map_or(0, KeyGroupRange::len);
                overlap as f64 >= threshold * h.key_group_range.len() as f64
            })
            .max_by_key(|h| {
                h.key_group_range
                    .intersect(range)
                    .map_or(0, KeyGroupRange::len)
            });
        let mut backend = match base {
            Some(SubtaskHandle {
                snapshot: SnapshotHandle::RocksDbIncremental { files, .. },
                key_group_range,
                ..
            }) => {
                let id = metadata.checkpoint_id;
                let bytes: u64 = files.iter().map(|f| f.file.size).sum();
                let clip = *key_group_range != range;
                let (backend, mut unverified) = traced(
                    "restore.base",
                    id,
                    || Self::restore_files(config, &metadata.states, files, storage, clip),
                    |_| bytes,
                )?;
                if clip {
                    traced(
                        "restore.clip",
                        id,
                        || backend.clip_to(*key_group_range, range, &mut unverified),
                        |_| 0,
                    )?;
                }
                backend
            }
            _ => {
                let mut backend = Self::new(config)?;
                for meta in &metadata.states {
                    backend.register_state(meta)?;
                }
                backend
            }
        };
        for &handle in overlapping
            .iter()
            .filter(|h| Some(h.subtask) != base.map(|b| b.subtask))
        {
            let bytes: u64 = handle.files().iter().map(|f| f.size).sum();
            traced(
                "restore.import",
                metadata.checkpoint_id,
                || backend.import(handle, metadata.states_of(handle), storage),
                |_| bytes,
            )
            .map_err(|e| {
                e.context(format_args!(
                    "importing subtask {} of checkpoint {}",
                    handle.subtask, metadata.checkpoint_id
                ))
            })?;
        }
        for handle in overlapping {
            restore_heap_timers(&mut backend, handle, metadata.checkpoint_id, storage)?;
        }
        backend.resume_compactions()?;
        adopt_key_codec(&mut backend, metadata)?;
        Ok(backend)
    }

    /// Fetches an incremental snapshot's files into `config.path/db` and opens them. With
    /// `link`, SST files the storage can hard-link are linked unread and returned, to be
    /// checked once a clip has dropped those it does not need (see [`Unverified`]).
    pub(crate) fn restore_files(
        mut config: RocksDbConfig,
        states: &[StateMeta],
        files: &[NamedFile],
        storage: &Arc<dyn CheckpointStorage>,
        link: bool,
    ) -> Result<(Self, Unverified)> {
        config.suspend_compactions |= link;
        let db_dir = config.path.join("db");
        if db_dir.join("CURRENT").exists() {
            return Err(Error::invalid_argument(format!(
                "working directory {} already holds a RocksDB instance",
                db_dir.display()
            )));
        }
        let linked = fetch_files(files, storage, &db_dir, config.transfer_concurrency, link)
            .inspect_err(|_| {
                let _ = std::fs::remove_dir_all(&config.path);
            })?;
        let unverified = Unverified {
            dir: db_dir.clone(),
            files: linked,
            concurrency: config.transfer_concurrency,
        };
        // The SST files only: RocksDB replays the logs at the opening below and then deletes
        // them, so no later checkpoint of this instance holds them.
        let confirmed = SharedFiles {
            storage: storage.describe(),
            files: files
                .iter()
                .filter(|f| f.name.ends_with(".sst"))
                .map(|f| (f.name.clone(), f.file.clone()))
                .collect(),
        };
        let path = config.path.clone();
        let backend = Self::open_instance(config, Some(states), confirmed).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&path);
        })?;
        Ok((backend, unverified))
    }

    /// Lets compactions start by themselves again after a restore suspended them.
    fn resume_compactions(&mut self) -> Result<()> {
        if !self.config.suspend_compactions {
            return Ok(());
        }
        self.config.suspend_compactions = false;
        let db = self.db()?;
        for name in existing_column_families(&self.config.path.join("db"))? {
            db.set_options_cf(
                column_family(db, &name)?,
                &[("disable_auto_compactions", "false")],
            )
            .map_err(map_err("resuming compactions"))?;
        }
        Ok(())
    }

    /// Deletes every entry outside `range` from every column family of the instance, which
    /// holds the key groups of `held`: whole files first, then range deletions of the parts of
    /// `held` outside `range` (no wider, so that they stay inside `held`'s keys), flushed; then
    /// what is left outside goes by compaction, so that no entry outside `range` stays on disk
    /// behind a tombstone (the first checkpoint after the clip would upload it). Files below L0
    /// hold one key group each once compacted (see `ffi::partition_files_by_first_key_byte`),
    /// so only L0 files are left across the edges: they are compacted among themselves, the
    /// levels below untouched. Where a file below L0 crosses an edge (written before the
    /// partitioning, or 2-byte prefixes at an edge that is not a multiple of 256), the
    /// deleted ranges are compacted through every level instead.
    fn clip_to(
        &self,
        held: KeyGroupRange,
        range: KeyGroupRange,
        unverified: &mut Unverified,
    ) -> Result<()> {
        let db = self.db()?;
        let prefix_len = self.config.max_parallelism.prefix_len();
        let bound = |group: u32| key_group_bound(group as u16, prefix_len);
        let mut outside = Vec::new();
        if held.start() < range.start() {
            outside.push((bound(held.start().into()), bound(range.start().into())));
        }
        if range.end() < held.end() {
            outside.push((
                bound(u32::from(range.end()) + 1),
                bound(u32::from(held.end()) + 1),
            ));
        }
        if outside.is_empty() {
            return unverified.check_live(db);
        }
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        // Every column family on disk, registered or not: none may keep other subtasks' keys.
        // Timers kept in memory were read only for this range's key groups.
        let families = existing_column_families(&self.config.path.join("db"))?;
        for name in &families {
            let cf = column_family(db, name)?;
            for (from, to) in &outside {
                db.delete_file_in_range_cf(cf, from, to)
                    .map_err(map_err("deleting files outside the key groups"))?;
                db.delete_range_cf_opt(cf, from, to, &write_options)
                    .map_err(map_err("deleting ranges outside the key groups"))?;
            }
            db.flush_cf_opt(cf, &flush)
                .map_err(map_err("flushing the range deletions"))?;
        }
        // The files the clip keeps are read from here on (the compactions below among the
        // first): they are checked now, the dropped ones never read.
        unverified.check_live(db)?;
        let edges = [
            bound(range.start().into()),
            bound(u32::from(range.end()) + 1),
        ];
        let held_keys = (bound(held.start().into()), bound(u32::from(held.end()) + 1));
        let live = crate::ffi::live_files(db);
        for name in &families {
            let cf = column_family(db, name)?;
            let files: Vec<_> = live.iter().filter(|f| &f.column_family == name).collect();
            // A file's keys beyond `held` are range deletions a clip before this one left
            // (this instance holds no entry there): only edges inside `held` count.
            let crosses = |f: &&crate::ffi::SstMeta| {
                let low = f.smallest_key.as_slice().max(held_keys.0.as_slice());
                edges.iter().any(|edge| {
                    held_keys.0 < *edge
                        && *edge < held_keys.1
                        && low < edge.as_slice()
                        && f.largest_key >= *edge
                })
            };
            // The L0 files holding anything outside `range` (the range deletions' own file
            // among them); RocksDB adds the L0 files between them in age.
            let l0: Vec<String> = files
                .iter()
                .filter(|f| {
                    f.level == 0
                        && outside
                            .iter()
                            .any(|(from, to)| f.smallest_key < *to && f.largest_key >= *from)
                })
                .map(|f| f.name.trim_start_matches('/').to_owned())
                .collect();
            // Files below L0 across an edge (L0 files a restore moved in keep their width):
            // compacted into the deepest of their levels with the L0 files, which takes in the
            // files between that overlap them, never the levels below. Without them, the L0
            // files go to the level above the first one holding files: the compaction then
            // reads nothing else, and, no file below holding keys outside `range`, it drops the
            // range deletions with what they cover (into L0 they would stay, and reach past
            // the key groups of whichever instance later takes these files in).
            let crossing: Vec<&&crate::ffi::SstMeta> =
                files.iter().filter(|f| f.level > 0 && crosses(f)).collect();
            let first_lower = files.iter().map(|f| f.level).filter(|&l| l > 0).min();
            let output_level = match crossing.iter().map(|f| f.level).max() {
                Some(level) => level,
                None => first_lower.map_or(1, |l| (l - 1).max(1)),
            };
            let mut inputs = l0;
            inputs.extend(
                crossing
                    .iter()
                    .map(|f| f.name.trim_start_matches('/').to_owned()),
            );
            let compacted = inputs.is_empty()
                || crate::ffi::compact_files(db, cf, &inputs, output_level).is_ok();
            if !compacted {
                let mut compact = CompactOptions::default();
                // Bottommost files too: they are where a checkpoint's data mostly lies.
                compact.set_bottommost_level_compaction(BottommostLevelCompaction::ForceOptimized);
                for (from, to) in &outside {
                    db.compact_range_cf_opt(
                        cf,
                        Some(from.as_slice()),
                        Some(to.as_slice()),
                        &compact,
                    );
                }
            }
        }
        Ok(())
    }

    /// Moves the entries of `handle` in this instance's key groups into it.
    fn import(
        &mut self,
        handle: &SubtaskHandle,
        states: &[StateMeta],
        storage: &Arc<dyn CheckpointStorage>,
    ) -> Result<()> {
        let Some(range) = handle
            .key_group_range
            .intersect(self.config.key_group_range)
        else {
            return Ok(());
        };
        let work = self.config.path.join(format!("import-{}", handle.subtask));
        let fresh = || {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&work)
                .map_err(|e| Error::io(format!("cannot create {}", work.display()), e))
        };
        fresh()?;
        if self.config.rescale_method == RescaleMethod::Files
            && let SnapshotHandle::RocksDbIncremental { files, .. } = &handle.snapshot
        {
            let moved = self.import_files(handle, files, range, states, storage, &work);
            match moved {
                Ok(Moved::Files) => {
                    let _ = std::fs::remove_dir_all(&work);
                    return Ok(());
                }
                Ok(Moved::Refused(why)) => {
                    tracing::info!(
                        subtask = handle.subtask,
                        why,
                        "rescale: rewriting the entries instead of moving the files"
                    );
                    fresh()?;
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&work);
                    return Err(e);
                }
            }
        }
        let imported = self.import_from(handle, range, states, storage, &work);
        let _ = std::fs::remove_dir_all(&work);
        // Timers this instance keeps in memory cannot go through SST files.
        for entry in imported? {
            let id = self.state_id(&states[entry.state].name)?;
            let key = EntryKey::new(&entry.key, entry.key_group, self.prefix_len());
            self.put(id, key, &entry.value)?;
        }
        Ok(())
    }

    /// Moves the entries of incremental snapshot `files` in `range` in as the source's own SST
    /// files: its instance is restored in `work`, clipped to `range` if it holds more (whole
    /// files outside deleted, the files across an edge compacted with the range deletions, which
    /// keeps their sequence numbers), and its live files are ingested as RocksDB generated them,
    /// oldest first. Nothing is ingested when a file still reaches outside `range` after the
    /// clip, or when this instance keeps in memory timers the source kept in a column family:
    /// then `Moved::Refused` says why, and the caller rewrites the entries.
    fn import_files(
        &self,
        handle: &SubtaskHandle,
        files: &[NamedFile],
        range: KeyGroupRange,
        states: &[StateMeta],
        storage: &Arc<dyn CheckpointStorage>,
        work: &Path,
    ) -> Result<Moved> {
        let source_heap_timers = handle.heap_timers.is_some();
        if !source_heap_timers && states.iter().any(|m| self.config.in_memory(&m.name)) {
            return Ok(Moved::Refused(
                "its timers are in column families, this instance's in memory",
            ));
        }
        let mut config = self.config.clone();
        config.path = work.join("instance");
        config.key_group_range = handle.key_group_range;
        config.delete_on_close = false;
        config.timer_store = if source_heap_timers {
            TimerStore::Heap
        } else {
            TimerStore::RocksDb
        };
        let clip = handle.key_group_range != range;
        // No background compaction changes the files while they are listed and moved.
        config.suspend_compactions = true;
        let (mut source, mut unverified) =
            Self::restore_files(config.clone(), states, files, storage, clip)?;
        if clip {
            source.clip_to(handle.key_group_range, range, &mut unverified)?;
        }
        let live = crate::ffi::live_files(source.db()?);
        source.close()?;
        drop(source);
        let db_dir = config.path.join("db");
        // After the clip every entry lies in `range`. Range deletions, the clip's own and
        // those of clips before it, may reach beyond (inside the source's key groups or past
        // them); RocksDB refuses a file whose key range, deletions included, overlaps data
        // already in the column family, and the entries are rewritten then.
        let mut by_family: std::collections::BTreeMap<&str, Vec<&crate::ffi::SstMeta>> =
            Default::default();
        for file in &live {
            by_family.entry(&file.column_family).or_default().push(file);
        }
        let db = self.db()?;
        for (family, mut files) in by_family {
            if family == "default" {
                continue;
            }
            let cf = db.cf_handle(family).ok_or_else(|| {
                Error::corruption(format!(
                    "snapshot column family '{family}' is not in the checkpoint's states"
                ))
            })?;
            // Oldest first: the deepest level first, and a level's files (L0's overlap) by
            // sequence number, so that for a key in several files the last one is the newest.
            files.sort_by_key(|f| (std::cmp::Reverse(f.level), f.largest_seqno));
            let paths: Vec<PathBuf> = files
                .iter()
                .map(|f| db_dir.join(f.name.trim_start_matches('/')))
                .collect();
            if let Err(e) = crate::ffi::ingest_db_generated_files(db, cf, &paths) {
                // Refused (an overlap RocksDB found): the entries are rewritten instead, those of
                // column families already moved again, which changes nothing they hold.
                tracing::warn!(error = %e, family, "rescale: RocksDB refused the source's files");
                return Ok(Moved::Refused("RocksDB refused to ingest the files"));
            }
        }
        Ok(Moved::Files)
    }

    fn import_from(
        &self,
        handle: &SubtaskHandle,
        range: KeyGroupRange,
        states: &[StateMeta],
        storage: &Arc<dyn CheckpointStorage>,
        work: &Path,
    ) -> Result<Vec<MemoryEntry>> {
        let cf_options = self.config.cf_options();
        let mut sink = Sink::new(self, &cf_options, states, work)?;
        match &handle.snapshot {
            SnapshotHandle::Full { file } => {
                let max_p = self.config.max_parallelism;
                let mut snapshot =
                    CanonicalSnapshot::open_for(storage.as_ref(), file, handle, max_p)?;
                let ids: Vec<usize> = snapshot
                    .states
                    .iter()
                    .map(|m| sink.state_index(&m.name))
                    .collect::<Result<_>>()?;
                for key_group in range.iter() {
                    snapshot.scan_key_group(key_group, &mut |state, entry| {
                        sink.add(ids[state], &entry)
                    })?;
                }
            }
            SnapshotHandle::RocksDbIncremental { files, .. } => {
                let scan = IncrementalScan {
                    files,
                    states,
                    range,
                    work: &work.join("db"),
                };
                scan.for_each(&self.config, storage, &mut |state, entry| {
                    sink.add(state, entry)
                })?;
            }
        }
        sink.finish()
    }
}

/// The entries of an incremental snapshot's key groups in `range`: its files fetched into `work`
/// and opened read-only.
struct IncrementalScan<'a> {
    files: &'a [NamedFile],
    states: &'a [StateMeta],
    range: KeyGroupRange,
    work: &'a Path,
}

impl IncrementalScan<'_> {
    /// Visits every entry, state by state, each state's in key order, with the state's index.
    fn for_each(
        &self,
        config: &RocksDbConfig,
        storage: &Arc<dyn CheckpointStorage>,
        f: &mut dyn FnMut(usize, &RawEntry<'_>) -> Result<()>,
    ) -> Result<()> {
        fetch_files(
            self.files,
            storage,
            self.work,
            config.transfer_concurrency,
            false,
        )?;
        let db = open_read_only(config, self.work)?;
        let prefix_len = config.max_parallelism.prefix_len();
        for (index, meta) in self.states.iter().enumerate() {
            let Some(cf) = db.cf_handle(&meta.name) else {
                // Timers kept in memory by the snapshot's writer are in its `heap_timers` file.
                if is_timer_state(&meta.name) {
                    continue;
                }
                return Err(Error::corruption(format!(
                    "snapshot lacks column family '{}'",
                    meta.name
                )));
            };
            for key_group in self.range.iter() {
                scan_key_group_in(&db, cf, prefix_len, key_group, &mut |entry| {
                    f(index, &entry).map(|()| std::ops::ControlFlow::Continue(()))
                })?;
            }
        }
        Ok(())
    }
}

/// Copies (and verifies) files into `dir` under their RocksDB names, a few at a time. With
/// `link`, SST files the storage hard-links are linked unread instead: they are returned, to be
/// checked before use.
fn fetch_files(
    files: &[NamedFile],
    storage: &Arc<dyn CheckpointStorage>,
    dir: &Path,
    concurrency: usize,
    link: bool,
) -> Result<Vec<NamedFile>> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let jobs: Vec<Job<Option<NamedFile>>> = files
        .iter()
        .map(|named| {
            check_relative_path(&named.name)?;
            let (named, dest, storage) = (named.clone(), dir.join(&named.name), storage.clone());
            Ok(Box::new(move || {
                if link && named.name.ends_with(".sst") && storage.link(&named.file, &dest)? {
                    return Ok(Some(named));
                }
                storage.fetch(&named.file, &dest).map(|()| None)
            }) as Job<Option<NamedFile>>)
        })
        .collect::<Result<_>>()?;
    Ok(run_bounded(jobs, concurrency)?
        .into_iter()
        .flatten()
        .collect())
}

/// SST files linked from the checkpoint and not read yet (see [`CheckpointStorage::link`]).
pub(crate) struct Unverified {
    dir: PathBuf,
    files: Vec<NamedFile>,
    concurrency: usize,
}

impl Unverified {
    /// Checks the size and CRC32C of those that are still live files of `db`, a few at a time;
    /// the others (a clip dropped them) are never read.
    fn check_live(&mut self, db: &DB) -> Result<()> {
        let live: std::collections::HashSet<String> = crate::ffi::live_files(db)
            .into_iter()
            .map(|f| f.name.trim_start_matches('/').to_owned())
            .collect();
        let jobs: Vec<Job<()>> = self
            .files
            .drain(..)
            .filter(|named| live.contains(&named.name))
            .map(|named| {
                let path = self.dir.join(&named.name);
                Box::new(move || check_local_file(&named.file, &path)) as Job<()>
            })
            .collect();
        run_bounded(jobs, self.concurrency).map(drop)
    }
}

/// What [`RocksDbBackend::import_files`] did.
enum Moved {
    /// The source's files are this instance's now.
    Files,
    /// Nothing was moved, for this reason.
    Refused(&'static str),
}

fn column_family<'d>(db: &'d DB, name: &str) -> Result<&'d rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::corruption(format!("column family '{name}' is missing")))
}

/// The bare key-group prefix: it sorts before every key of that group.
fn key_group_bound(group: u16, prefix_len: usize) -> Vec<u8> {
    let mut key = Vec::with_capacity(2);
    put_key_group(&mut key, group, prefix_len);
    key
}

/// An imported entry of a state the instance keeps in memory.
struct MemoryEntry {
    state: usize,
    key_group: u16,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// Where imported entries go: one SST file per state, ingested at the end; or write batches
/// without the WAL, written as they fill and flushed at the end (so that both leave the data in
/// SST files, as a checkpoint needs it).
struct Sink<'o> {
    db: &'o DB,
    states: Vec<String>,
    kinds: Vec<StateKind>,
    /// Per state, whether the instance keeps it in memory (heap timers).
    in_memory: Vec<bool>,
    /// Entries of the states kept in memory, put into the instance after the sink finishes.
    memory_entries: Vec<MemoryEntry>,
    prefix_len: usize,
    key: Vec<u8>,
    target: SinkTarget<'o>,
}

enum SinkTarget<'o> {
    Ingest {
        writers: Vec<(SstFileWriter<'o>, PathBuf, u64)>,
    },
    Batch {
        batch: WriteBatch,
        entries: usize,
        write_options: WriteOptions,
    },
}

impl<'o> Sink<'o> {
    fn new(
        backend: &'o RocksDbBackend,
        options: &'o Options,
        states: &[StateMeta],
        work: &Path,
    ) -> Result<Self> {
        let target = match backend.config.rescale_method {
            // Entries of a source whose files could not be moved are rewritten.
            RescaleMethod::Files | RescaleMethod::Ingest => {
                let mut writers = Vec::new();
                for (i, _) in states.iter().enumerate() {
                    let writer = SstFileWriter::create(options);
                    let path = work.join(format!("import-{i}.sst"));
                    writer
                        .open(&path)
                        .map_err(map_err("opening an SST file for import"))?;
                    writers.push((writer, path, 0));
                }
                SinkTarget::Ingest { writers }
            }
            RescaleMethod::WriteBatch => {
                let mut write_options = WriteOptions::default();
                write_options.disable_wal(true);
                SinkTarget::Batch {
                    batch: WriteBatch::default(),
                    entries: 0,
                    write_options,
                }
            }
        };
        Ok(Sink {
            db: backend.db()?,
            states: states.iter().map(|m| m.name.clone()).collect(),
            kinds: states.iter().map(|m| m.kind).collect(),
            in_memory: states
                .iter()
                .map(|m| backend.config.in_memory(&m.name))
                .collect(),
            memory_entries: Vec::new(),
            prefix_len: backend.config.max_parallelism.prefix_len(),
            key: Vec::new(),
            target,
        })
    }

    fn state_index(&self, name: &str) -> Result<usize> {
        self.states.iter().position(|n| n == name).ok_or_else(|| {
            Error::corruption(format!(
                "snapshot state '{name}' is not in the checkpoint's states"
            ))
        })
    }

    fn cf(&self, state: usize) -> Result<&'o rocksdb::ColumnFamily> {
        column_family(self.db, &self.states[state])
    }

    /// Adds one entry of state `state`; entries of one state arrive in ascending key order.
    fn add(&mut self, state: usize, entry: &RawEntry<'_>) -> Result<()> {
        self.key.clear();
        put_entry_key(
            &mut self.key,
            &entry.parts,
            self.prefix_len,
            self.kinds[state] == StateKind::Map,
        );
        if self.in_memory[state] {
            self.memory_entries.push(MemoryEntry {
                state,
                key_group: entry.parts.key_group,
                key: self.key.clone(),
                value: entry.value.to_vec(),
            });
            return Ok(());
        }
        let cf = match &self.target {
            SinkTarget::Batch { .. } => Some(self.cf(state)?),
            SinkTarget::Ingest { .. } => None,
        };
        match &mut self.target {
            SinkTarget::Ingest { writers } => {
                let (writer, _, count) = &mut writers[state];
                writer
                    .put(&self.key, entry.value)
                    .map_err(map_err("writing an SST file for import"))?;
                *count += 1;
            }
            SinkTarget::Batch {
                batch,
                entries,
                write_options,
            } => {
                batch.put_cf(cf.expect("looked up for batches"), &self.key, entry.value);
                *entries += 1;
                if *entries % BATCH_ENTRIES == 0 {
                    self.db
                        .write_opt(std::mem::take(batch), write_options)
                        .map_err(map_err("writing a batch"))?;
                }
            }
        }
        Ok(())
    }

    /// Writes what is left; returns the entries of states kept in memory.
    fn finish(self) -> Result<Vec<MemoryEntry>> {
        match self.target {
            SinkTarget::Ingest { writers } => {
                let mut options = IngestExternalFileOptions::default();
                // The files are ours and on the instance's filesystem: move, don't copy.
                options.set_move_files(true);
                for (state, (mut writer, path, count)) in writers.into_iter().enumerate() {
                    if count == 0 {
                        continue;
                    }
                    writer
                        .finish()
                        .map_err(map_err("finishing an SST file for import"))?;
                    let cf = column_family(self.db, &self.states[state])?;
                    self.db
                        .ingest_external_file_cf_opts(cf, &options, vec![path])
                        .map_err(map_err("ingesting an SST file"))?;
                }
            }
            SinkTarget::Batch {
                batch,
                write_options,
                ..
            } => {
                self.db
                    .write_opt(batch, &write_options)
                    .map_err(map_err("writing a batch"))?;
                let mut flush = FlushOptions::default();
                flush.set_wait(true);
                for (name, _) in self
                    .states
                    .iter()
                    .zip(&self.in_memory)
                    .filter(|(_, in_memory)| !**in_memory)
                {
                    let cf = column_family(self.db, name)?;
                    self.db
                        .flush_cf_opt(cf, &flush)
                        .map_err(map_err("flushing imported entries"))?;
                }
            }
        }
        Ok(self.memory_entries)
    }
}

/// Restores the timers `handle` kept in memory (its `heap_timers` file), in `engine`'s key
/// groups, into whichever store `engine` keeps timers in.
fn restore_heap_timers(
    engine: &mut dyn StateBackend,
    handle: &SubtaskHandle,
    checkpoint_id: u64,
    storage: &Arc<dyn CheckpointStorage>,
) -> Result<()> {
    let Some(file) = &handle.heap_timers else {
        return Ok(());
    };
    let max_p = engine.max_parallelism();
    let restore = || {
        let mut snapshot = CanonicalSnapshot::open_for(storage.as_ref(), file, handle, max_p)?;
        restore_canonical(&mut *engine, &mut snapshot)
    };
    traced("restore.timers", checkpoint_id, restore, |_| file.size)
        .map(drop)
        .map_err(|e| {
            e.context(format_args!(
                "restoring the heap timers of subtask {}",
                handle.subtask
            ))
        })
}

/// Streams the entries of `metadata` in `engine`'s key groups into `engine` through its write
/// path: full snapshots directly, RocksDB incremental snapshots through a temporary read-only
/// RocksDB instance in `work`. This is how the heap backend restores (and rescales) RocksDB
/// incremental checkpoints.
pub fn restore_into(
    engine: &mut dyn StateBackend,
    metadata: &CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    work: &Path,
) -> Result<()> {
    check_max_parallelism(metadata, engine)?;
    adopt_key_codec(engine, metadata)?;
    for meta in &metadata.states {
        engine.register_state(meta)?;
    }
    let range = engine.key_group_range();
    let max_p = metadata.max_parallelism;
    for handle in &metadata.subtasks {
        let Some(overlap) = handle.key_group_range.intersect(range) else {
            continue;
        };
        match &handle.snapshot {
            SnapshotHandle::Full { file } => {
                let mut snapshot =
                    CanonicalSnapshot::open_for(storage.as_ref(), file, handle, max_p)?;
                restore_canonical(engine, &mut snapshot)?;
            }
            SnapshotHandle::RocksDbIncremental { files, .. } => {
                let dir = work.join(format!("import-{}", handle.subtask));
                let _ = std::fs::remove_dir_all(&dir);
                let config = RocksDbConfig::new(work, max_p, range);
                let bytes: u64 = files.iter().map(|f| f.file.size).sum();
                let states = metadata.states_of(handle);
                // Registered above already: this only maps the handle's states to their ids.
                let ids = states
                    .iter()
                    .map(|meta| engine.register_state(meta))
                    .collect::<Result<Vec<_>>>()?;
                let scan = IncrementalScan {
                    files,
                    states,
                    range: overlap,
                    work: &dir,
                };
                let mut key = Vec::new();
                let import = || {
                    scan.for_each(&config, storage, &mut |state, entry| {
                        put_raw_entry(engine, ids[state], states[state].kind, entry, &mut key)
                    })
                };
                let result = traced("restore.import", metadata.checkpoint_id, import, |_| bytes);
                let _ = std::fs::remove_dir_all(&dir);
                result.map_err(|e: Error| {
                    e.context(format_args!("importing subtask {}", handle.subtask))
                })?;
            }
        }
        restore_heap_timers(engine, handle, metadata.checkpoint_id, storage)?;
    }
    Ok(())
}
