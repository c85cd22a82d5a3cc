//! [`BatchRep`]: a RocksDB `WriteBatch` built as its bytes, for writing out the write buffer and
//! for the batch calls (`put_batch`, `append_batch`, `map_put_batch`).
//!
//! Each `WriteBatch::put_cf` through the C API costs about 550 instructions (measured with
//! callgrind: the call, `WriteBatch::Put`'s save point, size checks and content flags, the
//! `std::string` appends), a fifth of a buffered point write. The batch's bytes are RocksDB's
//! documented, stable format (`db/write_batch.cc`; the write-ahead log holds them as they are):
//!
//! ```text
//! rep    := sequence: fixed64 (0, assigned by the write) | count: fixed32 | record*
//! record := kTypeColumnFamilyValue (5)    cf: varint32 key: varstring value: varstring
//!         | kTypeColumnFamilyDeletion (4) cf: varint32 key: varstring
//!         | kTypeColumnFamilyMerge (6)    cf: varint32 key: varstring value: varstring
//!           (the default column family, id 0: kTypeValue (1), kTypeDeletion (0) and
//!           kTypeMerge (2), without the id)
//! varstring := len: varint32 | bytes
//! ```
//!
//! Appending a record here is a few stores. The batch goes to RocksDB as these bytes with the
//! kinds of record it holds ([`BatchRep::write_to`], through `cpp/write_batch.cc`): RocksDB
//! reads a batch handed over as bytes alone once more to learn those kinds
//! (`WriteBatch::ComputeContentFlags`, about 265 instructions a record), which a batch built
//! call by call knows already and which this one tells it.
//! A test checks the bytes against the `rocksdb` crate's own `WriteBatch` for every kind.

use crate::ffi::write_batch_bytes;
use keyedstate_core::key_layout::put_varint;
use keyedstate_core::{Error, Result};

/// The header: sequence number (8 bytes) and count (4), both little endian.
const HEADER: usize = 12;

const TYPE_DELETION: u8 = 0x0;
const TYPE_VALUE: u8 = 0x1;
const TYPE_MERGE: u8 = 0x2;
const TYPE_CF_DELETION: u8 = 0x4;
const TYPE_CF_VALUE: u8 = 0x5;
const TYPE_CF_MERGE: u8 = 0x6;

/// The kinds of record a batch holds, as bits (`cpp/write_batch.cc` reads them).
const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_MERGE: u8 = 4;

/// A write batch under construction, as bytes; reused from batch to batch.
pub(crate) struct BatchRep {
    bytes: Vec<u8>,
    count: u32,
    /// The kinds of its records (`KIND_*` bits).
    kinds: u8,
}

impl Default for BatchRep {
    fn default() -> Self {
        BatchRep {
            bytes: vec![0; HEADER],
            count: 0,
            kinds: 0,
        }
    }
}

impl BatchRep {
    pub(crate) fn put(&mut self, cf: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.kinds |= KIND_PUT;
        self.record(cf, [TYPE_VALUE, TYPE_CF_VALUE], key, Some(value))
    }

    pub(crate) fn delete(&mut self, cf: u32, key: &[u8]) -> Result<()> {
        self.kinds |= KIND_DELETE;
        self.record(cf, [TYPE_DELETION, TYPE_CF_DELETION], key, None)
    }

    pub(crate) fn merge(&mut self, cf: u32, key: &[u8], value: &[u8]) -> Result<()> {
        self.kinds |= KIND_MERGE;
        self.record(cf, [TYPE_MERGE, TYPE_CF_MERGE], key, Some(value))
    }

    /// Appends one record: `types` are its type in the default column family and in another.
    #[inline]
    fn record(&mut self, cf: u32, types: [u8; 2], key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let out = &mut self.bytes;
        // Type, id and two lengths take at most 16 bytes: one capacity check for the record.
        out.reserve(16 + key.len() + value.map_or(0, <[u8]>::len));
        if cf == 0 {
            out.push(types[0]);
        } else {
            out.push(types[1]);
            put_varint32(out, cf);
        }
        put_varstring(out, key)?;
        if let Some(value) = value {
            put_varstring(out, value)?;
        }
        self.count += 1;
        Ok(())
    }

    /// Drops the records appended so far.
    pub(crate) fn clear(&mut self) {
        self.bytes.truncate(HEADER);
        self.bytes[8..HEADER].fill(0);
        self.count = 0;
        self.kinds = 0;
    }

    /// Writes the batch to `db` once `built` (the outcome of appending its records) succeeded;
    /// either way it is empty afterwards, so that half a batch never goes out with the next
    /// one. `context` names the write in an error.
    pub(crate) fn write_to(
        &mut self,
        db: &rocksdb::DB,
        built: Result<()>,
        context: &str,
    ) -> Result<()> {
        let kinds = self.kinds;
        let written = built.and_then(|()| write_batch_bytes(db, self.sealed(), kinds, context));
        self.clear();
        written
    }

    /// The batch's bytes, its count in the header.
    fn sealed(&mut self) -> &[u8] {
        self.bytes[8..HEADER].copy_from_slice(&self.count.to_le_bytes());
        &self.bytes
    }
}

/// Appends `bytes` with its varint32 length.
#[inline]
fn put_varstring(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| too_long(bytes.len()))?;
    put_varint32(out, len);
    out.extend_from_slice(bytes);
    Ok(())
}

/// Appends `value` as a varint: one byte below 128, the common case (ids, key lengths).
#[inline]
fn put_varint32(out: &mut Vec<u8>, value: u32) {
    match u8::try_from(value) {
        Ok(byte) if byte < 0x80 => out.push(byte),
        _ => put_varint(out, u64::from(value)),
    }
}

#[cold]
fn too_long(len: usize) -> Error {
    Error::invalid_argument(format!(
        "a key or value of {len} bytes is longer than RocksDB's limit of 4 GiB"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::{DB, Options, WriteBatch};

    /// A database in `dir` with the column families `families` (and the default one).
    fn open(dir: &tempfile::TempDir, families: &[&str]) -> DB {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        DB::open_cf(&options, dir.path(), families).unwrap()
    }

    #[test]
    fn the_bytes_are_those_of_rocksdbs_own_write_batch_for_every_kind_of_record() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, &["a", "b"]);
        let cf_a = db.cf_handle("a").unwrap();
        let cf_b = db.cf_handle("b").unwrap();
        let id = |cf| crate::ffi::column_family_id(cf);
        let default = db.cf_handle("default").unwrap();
        // A long value: its length takes two varint bytes.
        let long = vec![7u8; 300];

        let mut expected = WriteBatch::default();
        expected.put_cf(cf_a, b"k1", b"v1");
        expected.delete_cf(cf_b, b"k2");
        expected.merge_cf(cf_b, b"k3", &long);
        expected.put_cf(default, b"k4", b"");
        expected.delete_cf(default, b"k5");
        expected.merge_cf(default, b"k6", b"v6");

        let mut rep = BatchRep::default();
        rep.put(id(cf_a), b"k1", b"v1").unwrap();
        rep.delete(id(cf_b), b"k2").unwrap();
        rep.merge(id(cf_b), b"k3", &long).unwrap();
        rep.put(id(default), b"k4", b"").unwrap();
        rep.delete(id(default), b"k5").unwrap();
        rep.merge(id(default), b"k6", b"v6").unwrap();
        assert_eq!(rep.sealed(), expected.data());
        assert_eq!(rep.count, 6);

        // Cleared, it starts over empty.
        rep.clear();
        rep.put(id(cf_a), b"x", b"y").unwrap();
        let mut one = WriteBatch::default();
        one.put_cf(cf_a, b"x", b"y");
        assert_eq!(rep.sealed(), one.data());
    }

    #[test]
    fn a_batch_written_from_its_bytes_is_in_the_database_and_then_empty() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir, &["a"]);
        let cf = db.cf_handle("a").unwrap();
        let id = crate::ffi::column_family_id(cf);
        let mut rep = BatchRep::default();
        rep.put(id, b"kept", b"1").unwrap();
        rep.put(id, b"gone", b"2").unwrap();
        rep.delete(id, b"gone").unwrap();
        rep.write_to(&db, Ok(()), "test").unwrap();
        assert_eq!(db.get_cf(cf, b"kept").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(db.get_cf(cf, b"gone").unwrap(), None);
        assert_eq!((rep.count, rep.kinds, rep.bytes.len()), (0, 0, HEADER));
        // A failed build writes nothing and drops its records.
        rep.put(id, b"never", b"3").unwrap();
        let failed = rep.write_to(&db, Err(Error::invalid_argument("no")), "test");
        assert!(failed.is_err());
        assert_eq!(db.get_cf(cf, b"never").unwrap(), None);
        assert_eq!((rep.count, rep.kinds, rep.bytes.len()), (0, 0, HEADER));
        // A record of a column family RocksDB does not have is its error, with the context.
        rep.put(id + 100, b"k", b"v").unwrap();
        let error = rep
            .write_to(&db, Ok(()), "writing a test batch")
            .unwrap_err();
        assert!(
            error.to_string().contains("writing a test batch: rocksdb:"),
            "{error}"
        );
    }
}
