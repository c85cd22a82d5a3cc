//! The raw rust-rocksdb baseline for benchmarks: the same options, column families and write
//! options as [`crate::RocksDbBackend`], driven with precomputed key bytes and no keyedstate
//! layer in between. It exists so `keyedstate bench` measures the backend's overhead against
//! RocksDB itself in the same run, without RocksDB types leaving this crate.

use crate::config::RocksDbConfig;
use crate::error::map_err;
use keyedstate_core::{Error, Result};
use rocksdb::{ColumnFamilyDescriptor, DB, ReadOptions, WriteOptions};

/// A RocksDB instance with the backend's options, addressed by column family index.
pub struct RawBaseline {
    db: DB,
    names: Vec<String>,
    write_options: WriteOptions,
    read_options: ReadOptions,
}

impl RawBaseline {
    /// Opens a new instance in `config.path` with one column family per name.
    pub fn open(config: &RocksDbConfig, column_families: &[&str]) -> Result<Self> {
        let cf_options = config.keyed_cf_options();
        let descriptors = column_families
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, cf_options.clone()));
        let db =
            DB::open_cf_descriptors(&config.read_write_db_options(), &config.path, descriptors)
                .map_err(map_err("opening the raw baseline"))?;
        // As the backend writes: to the write-ahead log, not synced.
        let write_options = WriteOptions::default();
        Ok(RawBaseline {
            db,
            names: column_families.iter().map(|n| n.to_string()).collect(),
            write_options,
            read_options: ReadOptions::default(),
        })
    }

    fn cf(&self, index: usize) -> Result<&rocksdb::ColumnFamily> {
        let name = self
            .names
            .get(index)
            .ok_or_else(|| Error::invalid_argument("no such column family"))?;
        self.db
            .cf_handle(name)
            .ok_or_else(|| Error::invalid_argument("no such column family"))
    }

    pub fn put(&self, cf: usize, key: &[u8], value: &[u8]) -> Result<()> {
        self.db
            .put_cf_opt(self.cf(cf)?, key, value, &self.write_options)
            .map_err(map_err("put"))
    }

    pub fn merge(&self, cf: usize, key: &[u8], value: &[u8]) -> Result<()> {
        self.db
            .merge_cf_opt(self.cf(cf)?, key, value, &self.write_options)
            .map_err(map_err("merge"))
    }

    /// Compacts the whole column family (as flink-benchmarks compacts list state before
    /// reading it).
    pub fn compact(&self, cf: usize) -> Result<()> {
        self.db
            .compact_range_cf(self.cf(cf)?, None::<&[u8]>, None::<&[u8]>);
        Ok(())
    }

    /// Reads into `out` (cleared first); false when absent.
    pub fn get(&self, cf: usize, key: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        match self
            .db
            .get_pinned_cf_opt(self.cf(cf)?, key, &self.read_options)
            .map_err(map_err("get"))?
        {
            Some(value) => {
                out.extend_from_slice(&value);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
