//! [`RocksDbBackend`]: one RocksDB instance per subtask, one column family per state, keys laid
//! out as `docs/formats.md` says, writes without the WAL.

use crate::config::RocksDbConfig;
use crate::error::map_err;
use keyedstate_core::backend::{EntryScan, MapScan, Registration, StateRegistry};
use keyedstate_core::key_layout::split_entry_key;
use keyedstate_core::{
    EntryKey, Error, KeyGroupRange, KeyedStateBackend, MaxParallelism, RawEntry, Result,
    StateBackend, StateId, StateMeta,
};
use rocksdb::{
    ColumnFamily, DB, Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};
use std::path::{Path, PathBuf};

/// The RocksDB backend of one subtask.
pub struct RocksDbBackend {
    /// `None` once closed.
    db: Option<DB>,
    config: RocksDbConfig,
    prefix_len: usize,
    registry: StateRegistry,
    cf_options: Options,
    write_options: WriteOptions,
    read_options: ReadOptions,
    /// Reused for map entry keys (`[entry key][user key]`), so map access does not allocate.
    key_buf: Vec<u8>,
}

impl RocksDbBackend {
    /// Opens a new, empty instance in `config.path`.
    pub fn new(config: RocksDbConfig) -> Result<Self> {
        let range = config.key_group_range;
        if u32::from(range.end()) >= config.max_parallelism.get() {
            return Err(Error::invalid_argument(format!(
                "key-group range {range} is outside max parallelism {}",
                config.max_parallelism
            )));
        }
        if config.path.join("CURRENT").exists() {
            return Err(Error::invalid_argument(format!(
                "working directory {} already holds a RocksDB instance",
                config.path.display()
            )));
        }
        std::fs::create_dir_all(&config.path).map_err(|e| {
            Error::io(
                format!("cannot create working directory {}", config.path.display()),
                e,
            )
        })?;
        let db = DB::open(&config.db_options(), &config.path)
            .map_err(map_err(&format!("opening {}", config.path.display())))?;
        let mut write_options = WriteOptions::default();
        write_options.disable_wal(true);
        Ok(RocksDbBackend {
            db: Some(db),
            prefix_len: config.max_parallelism.prefix_len(),
            cf_options: config.cf_options(),
            config,
            registry: StateRegistry::default(),
            write_options,
            read_options: ReadOptions::default(),
            key_buf: Vec::new(),
        })
    }

    /// A new instance wrapped in the typed API.
    pub fn open(config: RocksDbConfig) -> Result<KeyedStateBackend> {
        Ok(KeyedStateBackend::new(Box::new(Self::new(config)?)))
    }

    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn db(&self) -> Result<&DB> {
        self.db
            .as_ref()
            .ok_or_else(|| Error::closed("the RocksDB backend is closed"))
    }

    /// The database and the column family of `state`.
    fn cf(&self, state: StateId) -> Result<(&DB, &ColumnFamily)> {
        let db = self.db()?;
        let name = &self
            .registry
            .metas()
            .get(state)
            .ok_or_else(|| unknown(state))?
            .name;
        let cf = db.cf_handle(name).ok_or_else(|| unknown(state))?;
        Ok((db, cf))
    }

    /// Writes `[entry key][user key]` into `key_buf`.
    fn map_key(key_buf: &mut Vec<u8>, key: EntryKey<'_>, user_key: &[u8]) {
        key_buf.clear();
        key_buf.extend_from_slice(key.bytes());
        key_buf.extend_from_slice(user_key);
    }

    /// Deletes every entry whose key starts with `prefix` (a whole map).
    fn delete_prefix(&self, state: StateId, prefix: &[u8]) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        let mut batch = WriteBatch::default();
        let mut iter = db.raw_iterator_cf_opt(cf, ReadOptions::default());
        iter.seek(prefix);
        while let Some(key) = iter.key() {
            if !key.starts_with(prefix) {
                break;
            }
            batch.delete_cf(cf, key);
            iter.next();
        }
        iter.status()
            .map_err(map_err("scanning a map to clear it"))?;
        db.write_opt(batch, &self.write_options)
            .map_err(map_err("clearing a map"))
    }
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

    fn register_state(&mut self, meta: &StateMeta) -> Result<StateId> {
        let id = match self.registry.register(meta)? {
            Registration::Existing(id) => return Ok(id),
            Registration::Created(id) => id,
        };
        let Some(db) = self.db.as_mut() else {
            self.registry.unregister_last();
            return Err(Error::closed("the RocksDB backend is closed"));
        };
        if let Err(e) = db.create_cf(&meta.name, &self.cf_options) {
            self.registry.unregister_last();
            return Err(map_err(&format!("creating column family '{}'", meta.name))(
                e,
            ));
        }
        Ok(id)
    }

    fn states(&self) -> &[StateMeta] {
        self.registry.metas()
    }

    fn get(&mut self, state: StateId, key: EntryKey<'_>, out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        let (db, cf) = self.cf(state)?;
        match db
            .get_pinned_cf_opt(cf, key.bytes(), &self.read_options)
            .map_err(map_err("get"))?
        {
            Some(value) => {
                out.extend_from_slice(&value);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn put(&mut self, state: StateId, key: EntryKey<'_>, value: &[u8]) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        db.put_cf_opt(cf, key.bytes(), value, &self.write_options)
            .map_err(map_err("put"))
    }

    fn append(&mut self, state: StateId, key: EntryKey<'_>, frames: &[u8]) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        db.merge_cf_opt(cf, key.bytes(), frames, &self.write_options)
            .map_err(map_err("merge"))
    }

    fn delete(&mut self, state: StateId, key: EntryKey<'_>) -> Result<()> {
        let meta = self
            .registry
            .metas()
            .get(state)
            .ok_or_else(|| unknown(state))?;
        if meta.kind == keyedstate_core::StateKind::Map {
            return self.delete_prefix(state, key.bytes());
        }
        let (db, cf) = self.cf(state)?;
        db.delete_cf_opt(cf, key.bytes(), &self.write_options)
            .map_err(map_err("delete"))
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
        let (db, cf) = self.cf(state)?;
        db.put_cf_opt(cf, &self.key_buf, value, &self.write_options)
            .map_err(map_err("put"))
    }

    fn map_remove(&mut self, state: StateId, key: EntryKey<'_>, user_key: &[u8]) -> Result<()> {
        Self::map_key(&mut self.key_buf, key, user_key);
        let (db, cf) = self.cf(state)?;
        db.delete_cf_opt(cf, &self.key_buf, &self.write_options)
            .map_err(map_err("delete"))
    }

    fn map_scan(&mut self, state: StateId, key: EntryKey<'_>, f: &mut MapScan<'_>) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        let prefix = key.bytes();
        let mut iter = db.raw_iterator_cf_opt(cf, ReadOptions::default());
        iter.seek(prefix);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            // Key and namespace are length-prefixed, so only this map's entries share the prefix.
            let Some(user_key) = k.strip_prefix(prefix) else {
                break;
            };
            if f(user_key, v)?.is_break() {
                return Ok(());
            }
            iter.next();
        }
        iter.status().map_err(map_err("scanning a map"))
    }

    fn scan_state(&mut self, state: StateId, f: &mut EntryScan<'_>) -> Result<()> {
        let (db, cf) = self.cf(state)?;
        let mut read_options = ReadOptions::default();
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

    fn close(&mut self) -> Result<()> {
        if let Some(db) = self.db.take() {
            drop(db);
            if self.config.delete_on_close {
                remove_dir(&self.config.path)?;
            }
        }
        Ok(())
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
