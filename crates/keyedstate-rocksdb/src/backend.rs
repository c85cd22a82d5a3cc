//! [`RocksDbBackend`]: one RocksDB instance per subtask, one column family per state, keys laid
//! out as `docs/formats.md` says, writes to the write-ahead log (not synced), which checkpoints
//! copy instead of flushing the memtables.
//!
//! The instance directory holds `db/` (the live database) and `snapshots/` (native RocksDB
//! checkpoints while their asynchronous part runs).

use crate::batch_rep::BatchRep;
use crate::config::{RocksDbConfig, TimerStore};
use crate::error::map_err;
use crate::ffi::{LiveFileCapture, PointReader};
use crate::memtable;
use crate::snapshot::{self, RocksDbSnapshot, SharedFiles, SharedRegistry};
use crate::write_buffer::{Kind, WriteBuffer};
use keyedstate_core::SortedTable;
use keyedstate_core::backend::{BatchRead, EntryScan, MapScan, Registration, StateRegistry};
use keyedstate_core::key_layout::{put_entry_key, put_key_group, split_entry_key};
use keyedstate_core::metrics::EngineMetrics;
use keyedstate_core::{AsyncSnapshot, Clock, KeyGroupSource, SnapshotKind};
use keyedstate_core::{
    EntryKey, Error, KeyGroupRange, KeyedStateBackend, MaxParallelism, RawEntry, Result,
    StateBackend, StateId, StateMeta,
};
use rocksdb::{
    ColumnFamily, ColumnFamilyDescriptor, DB, Direction, FlushOptions, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteOptions,
};
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Deletions per write batch when a whole map is cleared.
const CLEAR_BATCH: usize = 4096;

/// The most bytes of keys and values the write buffer holds before it is written out.
const WRITE_BUFFER_BYTES: usize = 4 << 20;

/// The RocksDB backend of one subtask.
pub struct RocksDbBackend {
    /// `None` once closed.
    /// Shared with the asynchronous parts of snapshots in flight, which take their native
    /// checkpoint after the synchronous part has returned.
    db: Option<Arc<DB>>,
    pub(crate) config: RocksDbConfig,
    prefix_len: usize,
    registry: StateRegistry,
    write_options: WriteOptions,
    /// `multi_get`'s.
    read_options: ReadOptions,
    /// Point reads (`get`), through one reused pinned slice.
    reader: PointReader,
    /// Reused for map entry keys (`[entry key][user key]`), so map access does not allocate.
    key_buf: Vec<u8>,
    /// What `get_ref` and `map_get_ref` lend: the last value read from RocksDB, copied out of
    /// its pinned slice.
    read_buf: Vec<u8>,
    /// Unique per instance (a restored one gets a new one), so names in `shared/` never repeat.
    backend_id: String,
    registry_files: Arc<Mutex<SharedRegistry>>,
    /// Options of the column families created after open. RocksDB keeps raw pointers to their
    /// merge operator and compaction filter, so they must outlive the database (declared after
    /// `db`, they are dropped after it).
    created_cf_options: Vec<Options>,
    /// The states kept in memory instead of a column family: the timers, with
    /// [`TimerStore::Heap`](crate::TimerStore::Heap).
    pub(crate) heap_timers: HashMap<StateId, SortedTable>,
    /// The TTL each state with one is judged by in its compaction filter, by state name: set
    /// when the state is registered, and again when it is registered with another TTL.
    ttl_millis: HashMap<String, Arc<AtomicU64>>,
    /// The latest point writes, not yet in RocksDB (see [`crate::write_buffer`]).
    writes: WriteBuffer,
    /// The batch being written out, of the write buffer or a batch call (see
    /// [`crate::batch_rep`]), reused.
    batch_rep: BatchRep,
    /// By state id: whether the state's point writes go through `writes` (keyed states in
    /// column families; not the timers, whose queues scan RocksDB on every pop).
    buffered: Vec<bool>,
}

/// The compaction filter's TTL cell of state `meta`, set to its TTL.
fn ttl_cell<'c>(
    cells: &'c mut HashMap<String, Arc<AtomicU64>>,
    meta: &StateMeta,
) -> &'c Arc<AtomicU64> {
    let cell = cells.entry(meta.name.clone()).or_default();
    cell.store(meta.ttl.map_or(u64::MAX, |t| t.millis), Ordering::Relaxed);
    cell
}

impl RocksDbBackend {
    /// Opens a new, empty instance in `config.path`.
    pub fn new(config: RocksDbConfig) -> Result<Self> {
        Self::open_instance(config, None, SharedFiles::default())
    }

    /// A new instance wrapped in the typed API.
    pub fn open(config: RocksDbConfig) -> Result<KeyedStateBackend> {
        Ok(KeyedStateBackend::new(Box::new(Self::new(config)?)))
    }

    /// A new instance wrapped in the typed API, statically dispatched: the state handles call
    /// this engine directly (see [`KeyedStateBackend::new_typed`]).
    pub fn open_typed(config: RocksDbConfig) -> Result<KeyedStateBackend<RocksDbBackend>> {
        Ok(KeyedStateBackend::new_typed(Self::new(config)?))
    }

    /// Opens the database in `config.path/db`: a new one, or with `restored` states the one a
    /// restore fetched there (its column families, and the states they belong to).
    pub(crate) fn open_instance(
        config: RocksDbConfig,
        restored: Option<&[StateMeta]>,
        confirmed: SharedFiles,
    ) -> Result<Self> {
        let range = config.key_group_range;
        if u32::from(range.end()) >= config.max_parallelism.get() {
            return Err(Error::invalid_argument(format!(
                "key-group range {range} is outside max parallelism {}",
                config.max_parallelism
            )));
        }
        let db_dir = config.path.join("db");
        if restored.is_none() && db_dir.join("CURRENT").exists() {
            return Err(already_holds(&db_dir));
        }
        let states = restored.unwrap_or_default();
        std::fs::create_dir_all(&db_dir).map_err(|e| {
            Error::io(
                format!("cannot create working directory {}", db_dir.display()),
                e,
            )
        })?;
        // A restored instance has a column family per state it held in RocksDB: all of them must
        // be opened. Timers held in memory by the snapshot's writer have none.
        let existing = existing_column_families(&db_dir)?;
        let mut ttl_millis = HashMap::new();
        let descriptors: Vec<_> = existing
            .iter()
            .map(|name| {
                let options = match states.iter().find(|meta| &meta.name == name) {
                    Some(meta) => config.cf_options_for(meta, ttl_cell(&mut ttl_millis, meta)),
                    None => config.cf_options(),
                };
                ColumnFamilyDescriptor::new(name, options)
            })
            .collect();
        let db = DB::open_cf_descriptors(&config.read_write_db_options(), &db_dir, descriptors)
            .map_err(map_err(&format!("opening {}", db_dir.display())))?;
        // The WAL is on (not synced): a checkpoint copies it instead of flushing the memtables.
        // RocksDB's defaults, as the batches written from their bytes use (`cpp/write_batch.cc`).
        let write_options = WriteOptions::default();
        let write_batch_entries = config.write_batch_entries;
        let mut backend = RocksDbBackend {
            db: Some(Arc::new(db)),
            prefix_len: config.max_parallelism.prefix_len(),
            config,
            registry: StateRegistry::default(),
            write_options,
            read_options: ReadOptions::default(),
            reader: PointReader::new(),
            key_buf: Vec::new(),
            read_buf: Vec::new(),
            backend_id: new_instance_id(),
            created_cf_options: Vec::new(),
            registry_files: Arc::new(Mutex::new(SharedRegistry {
                confirmed,
                pending: Default::default(),
            })),
            heap_timers: HashMap::new(),
            ttl_millis,
            writes: WriteBuffer::new(write_batch_entries, WRITE_BUFFER_BYTES),
            batch_rep: BatchRep::default(),
            buffered: Vec::new(),
        };
        for meta in states {
            backend.register_state(meta)?;
        }
        Ok(backend)
    }

    /// Moves the entries of this instance's key groups from the column family of timer state
    /// `meta` (a snapshot that kept timers in RocksDB) into memory, and drops the column family.
    fn move_into_memory(&mut self, meta: &StateMeta) -> Result<SortedTable> {
        let range = self.config.key_group_range;
        let mut table = SortedTable::new(range);
        let db = sole(&mut self.db)?;
        let cf = db.cf_handle(&meta.name).ok_or_else(|| unknown(0))?;
        let mut key = Vec::new();
        for key_group in range.iter() {
            scan_key_group_in(db, cf, self.prefix_len, key_group, &mut |entry| {
                key.clear();
                put_entry_key(&mut key, &entry.parts, self.prefix_len, false);
                table.put(EntryKey::new(&key, key_group, self.prefix_len), entry.value);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        db.drop_cf(&meta.name).map_err(map_err(&format!(
            "dropping column family '{}' after moving its timers into memory",
            meta.name
        )))?;
        Ok(table)
    }

    /// The instance directory.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Compacts every column family fully: what the compaction filter removes (expired TTL
    /// state) is gone afterwards.
    pub fn compact_all(&self) -> Result<()> {
        let db = self.db()?;
        for (_, cf) in self.column_families()? {
            db.compact_range_cf(cf, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    /// This instance's id, the prefix of its files in `shared/`.
    pub fn backend_id(&self) -> &str {
        &self.backend_id
    }

    pub(crate) fn db(&self) -> Result<&DB> {
        self.db.as_deref().ok_or_else(closed)
    }

    pub(crate) fn prefix_len(&self) -> usize {
        self.prefix_len
    }

    /// The id of the registered state `name`.
    pub(crate) fn state_id(&self, name: &str) -> Result<StateId> {
        self.registry
            .metas()
            .iter()
            .position(|meta| meta.name == name)
            .ok_or_else(|| Error::invalid_argument(format!("state '{name}' is not registered")))
    }

    /// The states held in column families, with theirs.
    pub(crate) fn column_families(&self) -> Result<Vec<(&StateMeta, &ColumnFamily)>> {
        let db = self.db()?;
        self.registry
            .metas()
            .iter()
            .enumerate()
            .filter(|(id, _)| !self.heap_timers.contains_key(id))
            .map(|(_, meta)| {
                let cf = db.cf_handle(&meta.name).ok_or_else(|| {
                    Error::corruption(format!("column family '{}' is missing", meta.name))
                })?;
                Ok((meta, cf))
            })
            .collect()
    }

    /// The database and the column family of `state`.
    fn cf(&self, state: StateId) -> Result<(&DB, &ColumnFamily)> {
        let db = self.db()?;
        Ok((db, cf_of(db, &self.registry, state)?))
    }

    /// Runs `read` (a `get` or `map_get`) into the read buffer and lends what it found.
    #[inline]
    fn lend_read(
        &mut self,
        read: impl FnOnce(&mut Self, &mut Vec<u8>) -> Result<bool>,
    ) -> Result<Option<&[u8]>> {
        let mut buf = std::mem::take(&mut self.read_buf);
        let found = read(self, &mut buf);
        self.read_buf = buf;
        Ok(found?.then_some(self.read_buf.as_slice()))
    }

    /// Whether `state`'s point writes are buffered.
    fn buffers(&self, state: StateId) -> bool {
        self.writes.enabled() && self.buffered.get(state).copied().unwrap_or(false)
    }

    /// Buffers a put (`Some`) or delete of `key` in `state`, writing the buffer out when full.
    fn buffer_write(&mut self, state: StateId, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        if self.writes.write(state, key, value) {
            self.write_out()?;
        }
        Ok(())
    }

    /// [`Self::buffer_write`] of the map entry key `map_key` left in `key_buf`.
    fn buffer_map_write(&mut self, state: StateId, value: Option<&[u8]>) -> Result<()> {
        let key_buf = std::mem::take(&mut self.key_buf);
        let result = self.buffer_write(state, &key_buf, value);
        self.key_buf = key_buf;
        result
    }

    /// Writes the buffered writes to RocksDB as one batch. On failure they stay buffered.
    fn write_out(&mut self) -> Result<()> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let Self {
            db,
            registry,
            writes,
            batch_rep: rep,
            ..
        } = self;
        let db = db.as_deref().ok_or_else(closed)?;
        // Column family ids by state, looked up once per batch.
        let mut families: Vec<Option<u32>> = Vec::new();
        let built = writes.for_each(|write| {
            if families.len() <= write.state {
                families.resize(write.state + 1, None);
            }
            let cf = match families[write.state] {
                Some(cf) => cf,
                None => {
                    let cf = crate::ffi::column_family_id(cf_of(db, registry, write.state)?);
                    families[write.state] = Some(cf);
                    cf
                }
            };
            match write.kind {
                Kind::Put => rep.put(cf, write.key, write.value),
                Kind::Delete => rep.delete(cf, write.key),
                Kind::Merge => rep.merge(cf, write.key, write.value),
            }
        });
        // On an error the writes stay buffered.
        rep.write_to(db, built, "writing the buffered writes")?;
        self.writes.clear();
        Ok(())
    }

    /// Writes one batch of `state`'s records, built by `build` into the reused batch bytes
    /// (given the column family's id): the batch calls. On a build error nothing is written.
    fn write_records(
        &mut self,
        state: StateId,
        build: impl FnOnce(&mut BatchRep, u32) -> Result<()>,
    ) -> Result<()> {
        // Earlier writes of the state first, so that the batch's win.
        self.write_out_for(state)?;
        let Self {
            db,
            registry,
            batch_rep: rep,
            ..
        } = self;
        let db = db.as_deref().ok_or_else(closed)?;
        let cf = crate::ffi::column_family_id(cf_of(db, registry, state)?);
        let built = build(rep, cf);
        rep.write_to(db, built, "writing a batch")
    }

    /// Writes the buffer out before `state` is read other than by a point read.
    fn write_out_for(&mut self, state: StateId) -> Result<()> {
        if self.buffers(state) {
            self.write_out()?;
        }
        Ok(())
    }

    /// Writes `[entry key][user key]` into `key_buf`.
    fn map_key(key_buf: &mut Vec<u8>, key: EntryKey<'_>, user_key: &[u8]) {
        key_buf.clear();
        key_buf.extend_from_slice(key.bytes());
        key_buf.extend_from_slice(user_key);
    }

    /// Deletes every entry whose key starts with `prefix` (a whole map), in batches of at most
    /// [`CLEAR_BATCH`] deletions, so that clearing a map of any size takes bounded memory. The
    /// iterator reads a snapshot, so the deletions it feeds do not disturb it.
    fn delete_prefix(&self, state: StateId, prefix: &[u8]) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        let mut batch = WriteBatch::default();
        let mut iter = db.raw_iterator_cf_opt(cf, memtable::within_key());
        iter.seek(prefix);
        while let Some(key) = iter.key() {
            if !key.starts_with(prefix) {
                break;
            }
            batch.delete_cf(cf, key);
            if batch.len() == CLEAR_BATCH {
                db.write_opt(std::mem::take(&mut batch), &self.write_options)
                    .map_err(map_err("clearing a map"))?;
            }
            iter.next();
        }
        iter.status()
            .map_err(map_err("scanning a map to clear it"))?;
        db.write_opt(batch, &self.write_options)
            .map_err(map_err("clearing a map"))
    }
}

impl KeyGroupSource for RocksDbBackend {
    fn scan_key_group(
        &mut self,
        state: StateId,
        key_group: u16,
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        if let Some(table) = self.heap_timers.get(&state) {
            return table.scan_group(key_group, f).map(drop);
        }
        self.write_out_for(state)?;
        let (db, cf) = self.cf(state)?;
        scan_key_group_in(db, cf, self.prefix_len, key_group, f)
    }
}

/// Names of the column families of the database in `db_dir`, but `default`; none for a new one.
pub(crate) fn existing_column_families(db_dir: &Path) -> Result<Vec<String>> {
    if !db_dir.join("CURRENT").exists() {
        return Ok(Vec::new());
    }
    let names = DB::list_cf(&Options::default(), db_dir).map_err(map_err(&format!(
        "listing the column families of {}",
        db_dir.display()
    )))?;
    Ok(names.into_iter().filter(|name| name != "default").collect())
}

/// The instance for a change only one holder may make (creating or dropping a column family,
/// closing), once no snapshot's asynchronous part holds it any more (it gives it up after its
/// native checkpoint: milliseconds).
fn sole(db: &mut Option<Arc<DB>>) -> Result<&mut DB> {
    let db = db.as_mut().ok_or_else(closed)?;
    let deadline = std::time::Instant::now() + SNAPSHOT_HOLD_LIMIT;
    while Arc::strong_count(db) > 1 {
        if std::time::Instant::now() > deadline {
            return Err(Error::invalid_argument(format!(
                "a snapshot's asynchronous part has held the instance for {} s: run or drop it \
                 before registering a state or closing",
                SNAPSHOT_HOLD_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Arc::get_mut(db).ok_or_else(closed)
}

/// How long registering a state or closing waits for a snapshot's asynchronous part to give
/// the instance back.
const SNAPSHOT_HOLD_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

fn closed() -> Error {
    Error::closed("the RocksDB backend is closed")
}

/// Visits the entries of one key group of column family `cf`, in key order.
pub(crate) fn scan_key_group_in(
    db: &DB,
    cf: &ColumnFamily,
    prefix_len: usize,
    key_group: u16,
    f: &mut EntryScan<'_>,
) -> Result<()> {
    scan_key_group_from_in(db, cf, prefix_len, key_group, None, f)
}

/// Like [`scan_key_group_in`], starting at entry key `floor` when given, and with the iterator
/// bounded above by the next key group's prefix, so that neither a start nor an end walks over
/// deleted entries outside the wanted part.
fn scan_key_group_from_in(
    db: &DB,
    cf: &ColumnFamily,
    prefix_len: usize,
    key_group: u16,
    floor: Option<&[u8]>,
    f: &mut EntryScan<'_>,
) -> Result<()> {
    let mut prefix = Vec::with_capacity(2);
    put_key_group(&mut prefix, key_group, prefix_len);
    let mut read_options = memtable::total_order();
    read_options.fill_cache(false);
    let mut upper = Vec::with_capacity(2);
    // Key groups are below max parallelism, at most 128 with a 1-byte prefix: +1 still fits.
    put_key_group(&mut upper, key_group + 1, prefix_len);
    read_options.set_iterate_upper_bound(upper);
    let mut iter = db.raw_iterator_cf_opt(cf, read_options);
    iter.seek(floor.filter(|f| f.starts_with(&prefix)).unwrap_or(&prefix));
    while let (Some(key), Some(value)) = (iter.key(), iter.value()) {
        if !key.starts_with(&prefix) {
            break;
        }
        let parts = split_entry_key(key, prefix_len)?;
        if f(RawEntry { parts, value })?.is_break() {
            return Ok(());
        }
        iter.next();
    }
    iter.status().map_err(map_err("scanning a key group"))
}

/// Opens the database in `dir` read-only, with all its column families.
pub(crate) fn open_read_only(config: &RocksDbConfig, dir: &Path) -> Result<DB> {
    let cf_options = config.cf_options();
    let descriptors = existing_column_families(dir)?
        .into_iter()
        .map(|name| ColumnFamilyDescriptor::new(name, cf_options.clone()));
    DB::open_cf_descriptors_read_only(&config.db_options(), dir, descriptors, false)
        .map_err(map_err(&format!("opening {} read-only", dir.display())))
}

fn already_holds(db_dir: &Path) -> Error {
    Error::invalid_argument(format!(
        "working directory {} already holds a RocksDB instance",
        db_dir.display()
    ))
}

/// A fresh id for an instance: 32 hex digits.
fn new_instance_id() -> String {
    format!("{:032x}", keyedstate_core::unique::unique_id())
}

/// The column family of `state` in `db`.
fn cf_of<'d>(db: &'d DB, registry: &StateRegistry, state: StateId) -> Result<&'d ColumnFamily> {
    let name = &registry
        .metas()
        .get(state)
        .ok_or_else(|| unknown(state))?
        .name;
    db.cf_handle(name).ok_or_else(|| unknown(state))
}

fn unknown(state: StateId) -> Error {
    Error::invalid_argument(format!("state #{state} is not registered in this backend"))
}

impl StateBackend for RocksDbBackend {
    fn engine_name(&self) -> &'static str {
        "rocksdb"
    }

    fn max_parallelism(&self) -> MaxParallelism {
        self.config.max_parallelism
    }

    fn key_group_range(&self) -> KeyGroupRange {
        self.config.key_group_range
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.config.clock.clone()
    }

    fn metrics(&mut self) -> Result<EngineMetrics> {
        self.write_out()?;
        let db = self.db()?;
        let property = |cf: &ColumnFamily, name: &str| -> Result<u64> {
            Ok(db
                .property_int_value_cf(cf, name)
                .map_err(map_err("reading a property"))?
                .unwrap_or(0))
        };
        let (mut entries, mut sst, mut memtables) = (Vec::new(), 0, 0);
        for (id, meta) in self.registry.metas().iter().enumerate() {
            if let Some(table) = self.heap_timers.get(&id) {
                entries.push(table.len());
                continue;
            }
            let cf = db.cf_handle(&meta.name).ok_or_else(|| {
                Error::corruption(format!("column family '{}' is missing", meta.name))
            })?;
            entries.push(property(cf, "rocksdb.estimate-num-keys")?);
            sst += property(cf, "rocksdb.total-sst-files-size")?;
            memtables += property(cf, "rocksdb.cur-size-all-mem-tables")?;
        }
        Ok(EngineMetrics {
            estimated_entries: entries,
            sst_bytes: Some(sst),
            memtable_bytes: Some(memtables),
            block_cache_bytes: Some(self.config.memory.cache_usage() as u64),
        })
    }

    fn register_state(&mut self, meta: &StateMeta) -> Result<StateId> {
        let id = match self.registry.register(meta)? {
            Registration::Existing(id) => {
                if meta.ttl.is_some() {
                    ttl_cell(&mut self.ttl_millis, meta);
                }
                return Ok(id);
            }
            Registration::Created(id) => id,
        };
        let has_cf = match self.db() {
            Ok(db) => db.cf_handle(&meta.name).is_some(),
            Err(e) => {
                self.registry.unregister_last();
                return Err(e);
            }
        };
        if self.config.in_memory(&meta.name) {
            let table = if has_cf {
                self.move_into_memory(meta)
                    .inspect_err(|_| self.registry.unregister_last())?
            } else {
                SortedTable::new(self.config.key_group_range)
            };
            self.heap_timers.insert(id, table);
            return Ok(id);
        }
        if self.buffered.len() <= id {
            self.buffered.resize(id + 1, false);
        }
        self.buffered[id] = !keyedstate_core::timers::is_timer_state(&meta.name);
        if has_cf {
            // Opened with the restored database.
            return Ok(id);
        }
        let options = self
            .config
            .cf_options_for(meta, ttl_cell(&mut self.ttl_millis, meta));
        let created = sole(&mut self.db).and_then(|db| {
            db.create_cf(&meta.name, &options)
                .map_err(map_err(&format!("creating column family '{}'", meta.name)))
        });
        if let Err(e) = created {
            self.registry.unregister_last();
            return Err(e);
        }
        self.created_cf_options.push(options);
        Ok(id)
    }

    fn states(&self) -> &[StateMeta] {
        self.registry.metas()
    }

    fn key_codec(&self) -> Option<&str> {
        self.registry.key_codec()
    }

    fn set_key_codec(&mut self, codec: &str) {
        self.registry.set_key_codec(codec);
    }

    fn get_ref(&mut self, state: StateId, key: EntryKey<'_>) -> Result<Option<&[u8]>> {
        self.lend_read(|backend, buf| backend.get(state, key, buf))
    }

    fn get(&mut self, state: StateId, key: EntryKey<'_>, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        if let Some(table) = self.heap_timers.get(&state) {
            let found = table.get(key);
            out.extend_from_slice(found.unwrap_or_default());
            return Ok(found.is_some());
        }
        // Frames appended since RocksDB's value, when the buffer holds only appends.
        let appended = match self.writes.get(state, key.bytes()) {
            Some(write) => match write.kind {
                Kind::Put => {
                    out.extend_from_slice(write.value);
                    return Ok(true);
                }
                Kind::Delete => return Ok(false),
                Kind::Merge => Some(write.value),
            },
            None => None,
        };
        let db = self.db.as_deref().ok_or_else(closed)?;
        let cf = cf_of(db, &self.registry, state)?;
        let found = self.reader.read(db, cf, key.bytes(), out, "get")?;
        match appended {
            Some(frames) => {
                out.extend_from_slice(frames);
                Ok(true)
            }
            None => Ok(found),
        }
    }

    fn multi_get(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        f: &mut BatchRead<'_>,
    ) -> Result<()> {
        if let Some(table) = self.heap_timers.get(&state) {
            return keys
                .iter()
                .enumerate()
                .try_for_each(|(i, &key)| f(i, table.get(key)));
        }
        self.write_out_for(state)?;
        let (db, cf) = self.cf(state)?;
        // One MultiGet over the keys in order, so RocksDB reads each block once; the results
        // go back to their positions.
        let mut order: Vec<usize> = (0..keys.len()).collect();
        order.sort_unstable_by(|&a, &b| keys[a].bytes().cmp(keys[b].bytes()));
        let sorted = order.iter().map(|&i| keys[i].bytes());
        let values = db.batched_multi_get_cf_opt(cf, sorted, true, &self.read_options);
        for (&i, value) in order.iter().zip(values) {
            let value = value.map_err(map_err("multi-get"))?;
            f(i, value.as_deref())?;
        }
        Ok(())
    }

    fn put_batch(&mut self, state: StateId, keys: &[EntryKey<'_>], values: &[&[u8]]) -> Result<()> {
        if self.heap_timers.contains_key(&state) {
            for (&key, value) in keys.iter().zip(values) {
                self.put(state, key, value)?;
            }
            return Ok(());
        }
        self.write_records(state, |rep, cf| {
            for (key, value) in keys.iter().zip(values) {
                rep.put(cf, key.bytes(), value)?;
            }
            Ok(())
        })
    }

    fn put(&mut self, state: StateId, key: EntryKey<'_>, value: &[u8]) -> Result<()> {
        if let Some(table) = self.heap_timers.get_mut(&state) {
            table.put(key, value);
            return Ok(());
        }
        if self.buffers(state) {
            return self.buffer_write(state, key.bytes(), Some(value));
        }
        let (db, cf) = self.cf(state)?;
        db.put_cf_opt(cf, key.bytes(), value, &self.write_options)
            .map_err(map_err("put"))
    }

    fn append(&mut self, state: StateId, key: EntryKey<'_>, frames: &[u8]) -> Result<()> {
        if self.buffers(state) {
            if self.writes.append(state, key.bytes(), frames) {
                self.write_out()?;
            }
            return Ok(());
        }
        let (db, cf) = self.cf(state)?;
        db.merge_cf_opt(cf, key.bytes(), frames, &self.write_options)
            .map_err(map_err("merge"))
    }

    fn append_batch(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        frames: &[&[u8]],
    ) -> Result<()> {
        self.write_records(state, |rep, cf| {
            for (key, frames) in keys.iter().zip(frames) {
                rep.merge(cf, key.bytes(), frames)?;
            }
            Ok(())
        })
    }

    fn delete(&mut self, state: StateId, key: EntryKey<'_>) -> Result<()> {
        if let Some(table) = self.heap_timers.get_mut(&state) {
            table.remove(key);
            return Ok(());
        }
        let meta = self
            .registry
            .metas()
            .get(state)
            .ok_or_else(|| unknown(state))?;
        if meta.kind == keyedstate_core::StateKind::Map {
            self.write_out_for(state)?;
            return self.delete_prefix(state, key.bytes());
        }
        if self.buffers(state) {
            return self.buffer_write(state, key.bytes(), None);
        }
        let (db, cf) = self.cf(state)?;
        db.delete_cf_opt(cf, key.bytes(), &self.write_options)
            .map_err(map_err("delete"))
    }

    fn map_get_ref(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
    ) -> Result<Option<&[u8]>> {
        self.lend_read(|backend, buf| backend.map_get(state, key, user_key, buf))
    }

    fn map_get(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<bool> {
        let mut key_buf = std::mem::take(&mut self.key_buf);
        Self::map_key(&mut key_buf, key, user_key);
        let key = EntryKey::new(&key_buf, key.key_group(), self.prefix_len);
        let found = self.get(state, key, out);
        self.key_buf = key_buf;
        found
    }

    fn map_put(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        user_key: &[u8],
        value: &[u8],
    ) -> Result<()> {
        Self::map_key(&mut self.key_buf, key, user_key);
        if self.buffers(state) {
            return self.buffer_map_write(state, Some(value));
        }
        let (db, cf) = self.cf(state)?;
        db.put_cf_opt(cf, &self.key_buf, value, &self.write_options)
            .map_err(map_err("put"))
    }

    fn map_put_batch(
        &mut self,
        state: StateId,
        keys: &[EntryKey<'_>],
        user_keys: &[&[u8]],
        values: &[&[u8]],
    ) -> Result<()> {
        let mut key_buf = std::mem::take(&mut self.key_buf);
        let written = self.write_records(state, |rep, cf| {
            for ((&key, user_key), value) in keys.iter().zip(user_keys).zip(values) {
                Self::map_key(&mut key_buf, key, user_key);
                rep.put(cf, &key_buf, value)?;
            }
            Ok(())
        });
        self.key_buf = key_buf;
        written
    }

    fn map_remove(&mut self, state: StateId, key: EntryKey<'_>, user_key: &[u8]) -> Result<()> {
        Self::map_key(&mut self.key_buf, key, user_key);
        if self.buffers(state) {
            return self.buffer_map_write(state, None);
        }
        let (db, cf) = self.cf(state)?;
        db.delete_cf_opt(cf, &self.key_buf, &self.write_options)
            .map_err(map_err("delete"))
    }

    fn map_scan(
        &mut self,
        state: StateId,
        key: EntryKey<'_>,
        after: Option<&[u8]>,
        f: &mut MapScan<'_>,
    ) -> Result<()> {
        self.write_out_for(state)?;
        let (db, cf) = self.cf(state)?;
        let prefix = key.bytes();
        let mut iter = db.raw_iterator_cf_opt(cf, memtable::within_key());
        match after {
            // Resuming a chunked iteration: one small allocation per chunk, not per entry.
            Some(after) => iter.seek([prefix, after].concat()),
            None => iter.seek(prefix),
        }
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            // Key and namespace are length-prefixed, so only this map's entries share the prefix.
            let Some(user_key) = k.strip_prefix(prefix) else {
                break;
            };
            if Some(user_key) == after {
                iter.next();
                continue;
            }
            if f(user_key, v)?.is_break() {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(map_err("scanning a map"))
    }

    fn timer_cache_capacity(&self) -> usize {
        match self.config.timer_store {
            TimerStore::RocksDb => self.config.timer_cache_size,
            TimerStore::Heap => 0,
        }
    }

    fn scan_key_group_from(
        &mut self,
        state: StateId,
        key_group: u16,
        floor: &[u8],
        f: &mut EntryScan<'_>,
    ) -> Result<()> {
        if let Some(table) = self.heap_timers.get(&state) {
            return table.scan_group(key_group, f).map(drop);
        }
        self.write_out_for(state)?;
        let (db, cf) = self.cf(state)?;
        scan_key_group_from_in(db, cf, self.prefix_len, key_group, Some(floor), f)
    }

    fn scan_state(&mut self, state: StateId, f: &mut EntryScan<'_>) -> Result<()> {
        if let Some(table) = self.heap_timers.get(&state) {
            return table.scan(f);
        }
        self.write_out_for(state)?;
        let (db, cf) = self.cf(state)?;
        let mut read_options = memtable::total_order();
        // A full scan would otherwise evict the hot blocks of the task's working set.
        read_options.fill_cache(false);
        for item in db.iterator_cf_opt(
            cf,
            read_options,
            IteratorMode::From(&[], Direction::Forward),
        ) {
            let (key, value) = item.map_err(map_err("scanning a state"))?;
            let parts = split_entry_key(&key, self.prefix_len)?;
            if f(RawEntry {
                parts,
                value: &value,
            })?
            .is_break()
            {
                break;
            }
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        checkpoint_id: u64,
        kind: SnapshotKind,
    ) -> Result<Box<dyn AsyncSnapshot>> {
        self.write_out()?;
        let db = self.db()?;
        // Every write is in the write-ahead log (RocksDB's `write` with the WAL on, not synced):
        // the capture lists the SST files and the log with the bytes written so far, and the
        // asynchronous part copies them. Nothing is flushed or written here; until the capture
        // is dropped RocksDB deletes none of its files (docs/config.md, "Checkpoint pause").
        let files = LiveFileCapture::capture(Arc::clone(self.db.as_ref().ok_or_else(closed)?))
            .map_err(|e| {
                Error::io(
                    format!("checkpoint {checkpoint_id}: listing the live files: {e}"),
                    std::io::Error::other(e),
                )
            })?;
        let wal_bytes: u64 = files
            .files
            .iter()
            .filter(|f| f.is_wal)
            .map(|f| f.size)
            .sum();
        if wal_bytes > self.config.checkpoint_wal_bytes {
            // So that later checkpoints copy SST files instead of a long log: the memtables
            // are switched here and flushed in the background, then RocksDB drops the log. A
            // column family whose earlier switch is still being flushed is left alone: a
            // second switch would wait for that flush (RocksDB stalls it rather than let
            // immutable memtables pile up), and the next checkpoint looks again.
            let mut flush = FlushOptions::default();
            flush.set_wait(false);
            for (_, cf) in self.column_families()? {
                let flushing = db
                    .property_int_value_cf(cf, "rocksdb.num-immutable-mem-table")
                    .map_err(map_err("reading rocksdb.num-immutable-mem-table"))?
                    .unwrap_or(0);
                if flushing == 0 {
                    db.flush_cf_opt(cf, &flush)
                        .map_err(map_err("flushing a long write-ahead log"))?;
                }
            }
        }
        let native_dir = self
            .config
            .path
            .join("snapshots")
            .join(format!("chk-{checkpoint_id}"));
        let confirmed = snapshot::lock(&self.registry_files).confirmed.clone();
        Ok(Box::new(RocksDbSnapshot {
            checkpoint_id,
            now: self.config.clock.now_millis(),
            kind,
            native_dir,
            immutable: files
                .files
                .iter()
                .filter(|f| f.immutable())
                .map(|f| f.name.clone())
                .collect(),
            files: Some(files),
            config: self.config.clone(),
            states: self.registry.metas().to_vec(),
            key_codec: self.registry.key_codec().map(str::to_owned),
            backend_id: self.backend_id.clone(),
            confirmed,
            registry: self.registry_files.clone(),
            // The synchronous part of the heap timers' snapshot: their key groups' `Arc`s.
            heap_timers: self.heap_timers.clone(),
        }))
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) -> Result<()> {
        snapshot::lock(&self.registry_files).complete(checkpoint_id);
        Ok(())
    }

    fn notify_checkpoint_aborted(&mut self, checkpoint_id: u64) -> Result<()> {
        snapshot::lock(&self.registry_files).abort(checkpoint_id);
        Ok(())
    }

    fn compact(&mut self) -> Result<()> {
        self.write_out()?;
        // Also while a snapshot's asynchronous part makes its native checkpoint: the files it
        // captured are not deleted until it is done (see `ffi::LiveFileCapture`).
        self.compact_all()
    }

    fn close(&mut self) -> Result<()> {
        // A kept instance (`delete_on_close` false) reopens with every write, as RocksDB
        // flushes its memtables on close; a deleted one needs none of them.
        let written = if self.db.is_some() && !self.config.delete_on_close {
            self.write_out()
        } else {
            Ok(())
        };
        if self.db.is_some() {
            // A snapshot's asynchronous part still taking its native checkpoint holds the
            // instance: it is closed when that is done, and its directory removed after.
            let released = sole(&mut self.db).map(drop);
            self.db.take();
            released?;
            if self.config.delete_on_close {
                remove_dir(&self.config.path)?;
            }
        }
        written
    }
}

impl Drop for RocksDbBackend {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!(error = %e, "closing a RocksDB backend on drop failed");
        }
    }
}

fn remove_dir(path: &PathBuf) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(
            format!("cannot remove working directory {}", path.display()),
            e,
        )),
    }
}
