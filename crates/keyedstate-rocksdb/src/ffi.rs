//! The one place RocksDB's C API is reached directly, for what the rocksdb crate does not wrap:
//! a compaction filter that can rewrite a value it has not been given as `'static` bytes (the
//! TTL filter drops expired elements from a list); the live files of an instance with their
//! sequence numbers, and the ingestion of another instance's own SST files (a rescale); a
//! column family's numeric id (what the write buffer's batch bytes name it by); and
//! the entry points of keyedstate's C++ files, `cpp/sorted_flush.cc` (the key-hash memtable's
//! sorted flush, which needs RocksDB's C++ classes), `cpp/live_files.cc` (a checkpoint's
//! capture of the live files, `GetLiveFilesStorageInfo`, which the C API lacks),
//! `cpp/write_batch.cc` (a write batch from its bytes) and `cpp/point_read.cc` (point reads
//! through one reusable `PinnableSlice`, where the C API allocates one per read).
//!
//! A filter *factory* is installed, not a filter: RocksDB may run one filter object on several
//! compaction threads at once, while each filter a factory creates serves one compaction, so it
//! can own the buffer its rewritten values live in.

use librocksdb_sys as sys;
use rocksdb::{AsColumnFamilyRef, AsRawPtr, Options};
use std::ffi::{CStr, c_char, c_int, c_uchar, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

/// What a compaction does with a value.
pub(crate) enum Decision {
    Keep,
    Remove,
    /// Replace it with the bytes the decision function left in its buffer.
    Change,
}

/// Decides a value (given its bytes and a buffer for a replacement). Called on compaction
/// threads; it must not panic (a panic keeps the value).
pub(crate) type DecideFn = dyn Fn(&[u8], &mut Vec<u8>) -> Decision + Send + Sync;

const NAME: &CStr = c"keyedstate.ttl.v1";

/// One compaction's filter: the shared decision and its own buffer.
struct Filter {
    decide: Arc<DecideFn>,
    buffer: Vec<u8>,
}

/// Installs a compaction filter factory whose filters apply `decide` to every value.
pub(crate) fn set_compaction_filter(options: &mut Options, decide: Arc<DecideFn>) {
    let state = Box::into_raw(Box::new(decide)).cast::<c_void>();
    // SAFETY: `state` is a valid, uniquely owned `Box<Arc<DecideFn>>` pointer that the factory
    // owns from here on and frees exactly once in `destroy_factory`. The callbacks match the C
    // declarations in rocksdb/c.h. `rocksdb_options_set_compaction_filter_factory` takes
    // ownership of the factory (a shared_ptr in the options), and `options.as_raw_ptr()` is
    // valid while `options` is borrowed.
    unsafe {
        let factory = sys::rocksdb_compactionfilterfactory_create(
            state,
            Some(destroy_factory),
            Some(create_filter),
            Some(name),
        );
        sys::rocksdb_options_set_compaction_filter_factory(options.as_raw_ptr(), factory);
    }
}

unsafe extern "C" fn name(_state: *mut c_void) -> *const c_char {
    NAME.as_ptr()
}

unsafe extern "C" fn destroy_factory(state: *mut c_void) {
    // SAFETY: `state` is the pointer made by `Box::into_raw` in `set_compaction_filter`; RocksDB
    // calls this once, when the factory is destroyed.
    drop(unsafe { Box::from_raw(state.cast::<Arc<DecideFn>>()) });
}

unsafe extern "C" fn create_filter(
    state: *mut c_void,
    _context: *mut sys::rocksdb_compactionfiltercontext_t,
) -> *mut sys::rocksdb_compactionfilter_t {
    // SAFETY: `state` is the factory's live `Arc<DecideFn>` (the factory outlives its filters).
    let decide = unsafe { &*state.cast::<Arc<DecideFn>>() }.clone();
    let filter = Box::into_raw(Box::new(Filter {
        decide,
        buffer: Vec::new(),
    }))
    .cast::<c_void>();
    // SAFETY: `filter` is a uniquely owned `Box<Filter>` pointer freed once in `destroy_filter`;
    // RocksDB owns the returned filter and destroys it when the compaction ends.
    unsafe {
        sys::rocksdb_compactionfilter_create(
            filter,
            Some(destroy_filter),
            Some(filter_value),
            Some(name),
        )
    }
}

unsafe extern "C" fn destroy_filter(state: *mut c_void) {
    // SAFETY: `state` is the pointer made by `Box::into_raw` in `create_filter`, destroyed once.
    drop(unsafe { Box::from_raw(state.cast::<Filter>()) });
}

#[allow(clippy::too_many_arguments)] // the C signature
unsafe extern "C" fn filter_value(
    state: *mut c_void,
    _level: c_int,
    _key: *const c_char,
    _key_length: usize,
    value: *const c_char,
    value_length: usize,
    new_value: *mut *mut c_char,
    new_value_length: *mut usize,
    value_changed: *mut c_uchar,
) -> c_uchar {
    // SAFETY: `state` is this filter's `Filter`, used by one compaction thread at a time; `value`
    // points at `value_length` readable bytes for the duration of the call.
    let (filter, value) = unsafe {
        (
            &mut *state.cast::<Filter>(),
            std::slice::from_raw_parts(value.cast::<u8>(), value_length),
        )
    };
    let Filter { decide, buffer } = filter;
    // A panic must not unwind into C++: keep the value instead.
    let decision =
        catch_unwind(AssertUnwindSafe(|| decide(value, buffer))).unwrap_or(Decision::Keep);
    match decision {
        Decision::Keep => 0,
        Decision::Remove => 1,
        Decision::Change => {
            // SAFETY: the out-pointers are valid for writes; RocksDB copies `buffer` before the
            // next call on this filter, and the filter (so the buffer) outlives this call.
            unsafe {
                *new_value = buffer.as_mut_ptr().cast::<c_char>();
                *new_value_length = buffer.len();
                *value_changed = 1;
            }
            0
        }
    }
}

/// One live SST file of an instance, as `rocksdb_livefiles` describes it.
#[derive(Debug, Clone)]
pub(crate) struct SstMeta {
    pub column_family: String,
    /// The file's name in the instance directory (`/000012.sst`).
    pub name: String,
    pub level: i32,
    pub smallest_key: Vec<u8>,
    pub largest_key: Vec<u8>,
    pub largest_seqno: u64,
}

/// The live SST files of `db`, every column family, with their levels, key ranges and sequence
/// numbers (the `rocksdb` crate's `live_files` leaves the sequence numbers out; ingesting one
/// instance's files into another needs them to order its L0 files).
pub(crate) fn live_files(db: &rocksdb::DB) -> Vec<SstMeta> {
    // SAFETY: `db.as_raw_ptr()` is a valid open database while `db` is borrowed. The returned
    // list is owned here, read only within its count, and destroyed once below; the strings it
    // hands out are copied before that.
    unsafe {
        let files = sys::rocksdb_livefiles(db.as_raw_ptr());
        let count = sys::rocksdb_livefiles_count(files);
        let mut out = Vec::with_capacity(count.max(0) as usize);
        for i in 0..count {
            let key = |f: unsafe extern "C" fn(
                *const sys::rocksdb_livefiles_t,
                c_int,
                *mut usize,
            ) -> *const c_char| {
                let mut len = 0usize;
                let ptr = f(files, i, &mut len);
                std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
            };
            out.push(SstMeta {
                column_family: CStr::from_ptr(sys::rocksdb_livefiles_column_family_name(files, i))
                    .to_string_lossy()
                    .into_owned(),
                name: CStr::from_ptr(sys::rocksdb_livefiles_name(files, i))
                    .to_string_lossy()
                    .into_owned(),
                level: sys::rocksdb_livefiles_level(files, i),
                smallest_key: key(sys::rocksdb_livefiles_smallestkey),
                largest_key: key(sys::rocksdb_livefiles_largestkey),
                largest_seqno: sys::rocksdb_livefiles_largest_seqno(files, i),
            });
        }
        sys::rocksdb_livefiles_destroy(files);
        out
    }
}

/// Ingests SST files another RocksDB instance generated into column family `cf` of `db`,
/// moving them (hard links, then the originals unlinked) and keeping their sequence numbers:
/// RocksDB 11's `allow_db_generated_files`, which the `rocksdb` crate does not wrap. `files`
/// must be ordered oldest first (lowest level first, L0 by sequence number), so that for a key
/// in several files the later one is newer, and must not overlap data already in `cf`.
pub(crate) fn ingest_db_generated_files(
    db: &rocksdb::DB,
    cf: &rocksdb::ColumnFamily,
    files: &[std::path::PathBuf],
) -> std::result::Result<(), String> {
    let paths = c_strings(files.iter().map(|p| p.as_os_str().as_encoded_bytes()))?;
    let pointers: Vec<*const c_char> = paths.iter().map(|p| p.as_ptr()).collect();
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the options object is created, configured and destroyed here; `db.as_raw_ptr()`
    // and `cf.inner()` are valid while `db` and `cf` are borrowed; `pointers` holds
    // `pointers.len()` NUL-terminated strings that `paths` keeps alive through the call; RocksDB
    // sets `error` to a malloc'd message on failure, which is copied and freed once.
    unsafe {
        let options = sys::rocksdb_ingestexternalfileoptions_create();
        sys::rocksdb_ingestexternalfileoptions_set_allow_db_generated_files(options, 1);
        // Generated files keep their sequence numbers: none can be assigned.
        sys::rocksdb_ingestexternalfileoptions_set_snapshot_consistency(options, 0);
        sys::rocksdb_ingestexternalfileoptions_set_allow_global_seqno(options, 0);
        // Nothing in the memtable overlaps them; a flush would mean a bug, so refuse instead.
        sys::rocksdb_ingestexternalfileoptions_set_allow_blocking_flush(options, 0);
        sys::rocksdb_ingestexternalfileoptions_set_move_files(options, 1);
        sys::rocksdb_ingest_external_file_cf(
            db.as_raw_ptr(),
            cf.inner(),
            pointers.as_ptr(),
            pointers.len(),
            options,
            &mut error,
        );
        sys::rocksdb_ingestexternalfileoptions_destroy(options);
        take_error(error)
    }
}

/// The id of column family `cf` (what a write batch's records name it by, see
/// [`crate::batch_rep`]); the `rocksdb` crate does not expose it.
pub(crate) fn column_family_id(cf: &rocksdb::ColumnFamily) -> u32 {
    // SAFETY: `cf.inner()` is a valid handle while `cf` is borrowed; the call only reads it.
    unsafe { sys::rocksdb_column_family_handle_get_id(cf.inner()) }
}

/// Makes compactions cut their output files where the first byte of the key changes: at every
/// key group with 1-byte key-group prefixes, every 256 key groups with 2-byte ones. A file then
/// never holds two subtasks' key groups once compacted (for any parallelism with 1-byte
/// prefixes), so a rescale clips by dropping whole files. (The `rocksdb` crate does not wrap
/// SST partitioners.)
pub(crate) fn partition_files_by_first_key_byte(options: &mut Options) {
    // SAFETY: the factory is created here and handed to the options, which keep their own
    // reference (a shared_ptr), so it is destroyed here once; `options.as_raw_ptr()` is valid
    // while `options` is borrowed.
    unsafe {
        let factory = sys::rocksdb_sst_partitioner_fixed_prefix_factory_create(1);
        sys::rocksdb_options_set_sst_partitioner_factory(options.as_raw_ptr(), factory);
        sys::rocksdb_sst_partitioner_factory_destroy(factory);
    }
}

unsafe extern "C" {
    /// `cpp/sorted_flush.cc`: sets the key-hash memtable (a HashLinkList of `buckets`
    /// buckets in the sorted-flush rep) as the options' memtable factory.
    fn keyedstate_key_hash_memtable(options: *mut sys::rocksdb_options_t, buckets: usize);
}

/// Sets the key-hash memtable on `options`: RocksDB's hash table of sorted linked lists with
/// `buckets` buckets, its logging off, whose immutable memtables hand a flush their entries
/// from an array sorted once, not from a skip list built entry by entry
/// (`cpp/sorted_flush.cc`, `crate::memtable`).
pub(crate) fn set_sorted_hash_link_list(options: &mut Options, buckets: usize) {
    // SAFETY: `options.as_raw_ptr()` is a valid `rocksdb_options_t` while `options` is
    // borrowed; the C++ side only replaces its `memtable_factory` shared_ptr, which the
    // options then own. It compiles against the headers librocksdb-sys built RocksDB from,
    // with the defines that shape `Options` (build.rs).
    unsafe { keyedstate_key_hash_memtable(options.as_raw_ptr(), buckets) }
}

/// Compacts exactly the files `names` of column family `cf` (names as [`live_files`] gives
/// them) into `output_level`: an intra-L0 compaction when they are all L0 files and the level
/// is 0, which drops what their range deletions cover without touching the levels below.
pub(crate) fn compact_files(
    db: &rocksdb::DB,
    cf: &rocksdb::ColumnFamily,
    names: &[String],
    output_level: i32,
) -> std::result::Result<(), String> {
    let names = c_strings(names.iter().map(String::as_bytes))?;
    let pointers: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: as in `ingest_db_generated_files`: the options are created and destroyed here,
    // `db` and `cf` are valid while borrowed, `pointers` point into `names`, alive through the
    // call, and the error message is copied and freed once. No output names are asked for.
    unsafe {
        let options = sys::rocksdb_compaction_options_create();
        sys::rocksdb_compact_files_cf(
            db.as_raw_ptr(),
            cf.inner(),
            options,
            pointers.as_ptr(),
            pointers.len(),
            output_level,
            -1,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut error,
        );
        sys::rocksdb_compaction_options_destroy(options);
        take_error(error)
    }
}

/// A live file of an instance as [`LiveFileCapture::capture`] lists it.
#[derive(Debug, Clone)]
pub(crate) struct LiveFile {
    /// Its name in its directory (`000012.sst`, `000015.log`, `MANIFEST-000005`, `CURRENT`).
    pub name: String,
    /// The directory that holds it.
    pub directory: std::path::PathBuf,
    /// The bytes that belong to the capture: a write-ahead log file or the MANIFEST may have
    /// grown since (`trim_to_size`), and only its first `size` bytes are the capture's.
    pub size: u64,
    pub trim_to_size: bool,
    /// The contents to write instead of reading the file (CURRENT, which may be replaced).
    pub replacement: Option<Vec<u8>>,
    pub is_wal: bool,
}

impl LiveFile {
    /// Whether the file never changes under its name: an SST file, or a write-ahead log file
    /// RocksDB closed (it reuses no log file: `recycle_log_file_num` is 0), whose copy a later
    /// checkpoint of the instance may reference instead of uploading it again.
    pub(crate) fn immutable(&self) -> bool {
        self.name.ends_with(".sst") || (self.is_wal && !self.trim_to_size)
    }
}

unsafe extern "C" {
    /// `cpp/write_batch.cc`.
    fn keyedstate_write_batch_bytes(
        db: *mut sys::rocksdb_t,
        bytes: *const c_char,
        len: usize,
        kinds: c_uchar,
        error: *mut *mut c_char,
    ) -> c_int;
}

/// Writes the write batch `bytes` (RocksDB's format, see `batch_rep.rs`), whose records are of
/// `kinds` (`batch_rep::KIND_*` bits), to `db` with RocksDB's default write options, telling
/// RocksDB those kinds so that it need not read the batch to learn them (`cpp/write_batch.cc`).
/// `context` names the write in an error.
pub(crate) fn write_batch_bytes(
    db: &rocksdb::DB,
    bytes: &[u8],
    kinds: u8,
    context: &str,
) -> keyedstate_core::Result<()> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `db.as_raw_ptr()` is a valid open `rocksdb_t` while `db` is borrowed, and
    // `bytes` is valid for `len` bytes for the call, which copies them; on failure the call
    // sets `error` to a malloc'd message, taken once below.
    let code = unsafe {
        keyedstate_write_batch_bytes(
            db.as_raw_ptr(),
            bytes.as_ptr().cast::<c_char>(),
            bytes.len(),
            kinds,
            &mut error,
        )
    };
    if code == 0 {
        return Ok(());
    }
    // SAFETY: a failed write set `error` (or left it null); it is not used after this.
    let message = unsafe { take_error(error) }
        .err()
        .unwrap_or_else(|| "writing a batch failed".to_owned());
    Err(crate::error::status_error(context, code, &message))
}

unsafe extern "C" {
    /// `cpp/point_read.cc`.
    fn keyedstate_point_reader_create() -> *mut c_void;
    fn keyedstate_point_reader_destroy(reader: *mut c_void);
    #[allow(clippy::too_many_arguments)] // the C signature
    fn keyedstate_point_read(
        db: *mut sys::rocksdb_t,
        cf: *mut sys::rocksdb_column_family_handle_t,
        reader: *mut c_void,
        key: *const c_char,
        key_len: usize,
        value: *mut *const c_char,
        value_len: *mut usize,
        error: *mut *mut c_char,
    ) -> c_int;
    fn keyedstate_point_reader_release(reader: *mut c_void);
}

/// Point reads with RocksDB's default read options through one reused `PinnableSlice`
/// (`cpp/point_read.cc`): the C API's `rocksdb_get_pinned_cf` allocates and frees one per
/// read. Nothing stays pinned between reads: each copies its value out and releases it.
pub(crate) struct PointReader(*mut c_void);

// SAFETY: the reader is owned by one backend and used through `&mut self` only, so one thread
// at a time; it holds no thread-affine state (a `ReadOptions` and a released `PinnableSlice`).
unsafe impl Send for PointReader {}

impl PointReader {
    pub(crate) fn new() -> Self {
        // SAFETY: no arguments; the returned reader is owned here and destroyed once, in drop.
        PointReader(unsafe { keyedstate_point_reader_create() })
    }

    /// Reads `key` of `cf` into `out` (appended); whether it was found. `context` names the
    /// read in an error.
    pub(crate) fn read(
        &mut self,
        db: &rocksdb::DB,
        cf: &rocksdb::ColumnFamily,
        key: &[u8],
        out: &mut Vec<u8>,
        context: &str,
    ) -> keyedstate_core::Result<bool> {
        let (mut value, mut value_len) = (std::ptr::null::<c_char>(), 0usize);
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: `db.as_raw_ptr()` and `cf.inner()` are valid while `db` and `cf` are
        // borrowed, `self.0` is a live reader owned here, and `key` is valid for its length
        // during the call; on success `value` is null or valid for `value_len` bytes until the
        // release below, and it is copied before that; on failure `error` is taken once.
        unsafe {
            let code = keyedstate_point_read(
                db.as_raw_ptr(),
                cf.inner(),
                self.0,
                key.as_ptr().cast::<c_char>(),
                key.len(),
                &mut value,
                &mut value_len,
                &mut error,
            );
            if code != 0 {
                let message = take_error(error)
                    .err()
                    .unwrap_or_else(|| "a point read failed".to_owned());
                return Err(crate::error::status_error(context, code, &message));
            }
            let found = !value.is_null();
            if found {
                out.extend_from_slice(std::slice::from_raw_parts(value.cast::<u8>(), value_len));
            }
            keyedstate_point_reader_release(self.0);
            Ok(found)
        }
    }
}

impl Drop for PointReader {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from `keyedstate_point_reader_create` and is destroyed once.
        unsafe { keyedstate_point_reader_destroy(self.0) }
    }
}

unsafe extern "C" {
    /// `cpp/live_files.cc`.
    fn keyedstate_live_files_capture(
        db: *mut sys::rocksdb_t,
        error: *mut *mut c_char,
    ) -> *mut c_void;
    fn keyedstate_live_files_count(capture: *const c_void) -> usize;
    #[allow(clippy::too_many_arguments)] // the C signature
    fn keyedstate_live_files_at(
        capture: *const c_void,
        i: usize,
        name: *mut *const c_char,
        name_len: *mut usize,
        directory: *mut *const c_char,
        directory_len: *mut usize,
        size: *mut u64,
        trim_to_size: *mut c_uchar,
        replacement: *mut *const c_char,
        replacement_len: *mut usize,
        kind: *mut c_int,
    );
    fn keyedstate_live_files_release(capture: *mut c_void);
}

/// The live files of an instance at one instant, none of them deleted until this is dropped
/// (RocksDB's file deletions are off for as long; each capture turns them off once).
pub(crate) struct LiveFileCapture {
    /// Keeps the instance open while deletions are off (the backend waits for it to close);
    /// never read.
    _db: Arc<rocksdb::DB>,
    raw: *mut c_void,
    pub files: Vec<LiveFile>,
}

// SAFETY: `raw` is only used by `drop`, on whatever thread holds the capture: RocksDB's
// EnableFileDeletions takes the instance's own locks, and nothing else touches the capture.
unsafe impl Send for LiveFileCapture {}

impl LiveFileCapture {
    /// Turns `db`'s file deletions off and lists its live files without a flush: its SST
    /// files, its MANIFEST and write-ahead log files with their sizes now (the log holds every
    /// write made so far), CURRENT and OPTIONS.
    pub(crate) fn capture(db: Arc<rocksdb::DB>) -> std::result::Result<Self, String> {
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: `db.as_raw_ptr()` is a valid open `rocksdb_t` while `db` is held; the C++
        // side only calls DB methods on it. On failure it returns null and a malloc'd message.
        let raw = unsafe { keyedstate_live_files_capture(db.as_raw_ptr(), &mut error) };
        if raw.is_null() {
            // SAFETY: `error` is the message the failed capture allocated, used once here.
            return Err(unsafe { take_error(error) }
                .err()
                .unwrap_or_else(|| "capturing the live files failed".to_owned()));
        }
        let mut capture = LiveFileCapture {
            _db: db,
            raw,
            files: Vec::new(),
        };
        // SAFETY: `raw` is a live capture until `drop` releases it; each index is below its
        // count, and the strings it points at (valid until the release) are copied here.
        unsafe {
            let count = keyedstate_live_files_count(raw);
            for i in 0..count {
                let (mut name, mut name_len) = (std::ptr::null(), 0);
                let (mut directory, mut directory_len) = (std::ptr::null(), 0);
                let (mut replacement, mut replacement_len) = (std::ptr::null(), 0);
                let (mut size, mut trim, mut kind) = (0u64, 0u8, 0);
                keyedstate_live_files_at(
                    raw,
                    i,
                    &mut name,
                    &mut name_len,
                    &mut directory,
                    &mut directory_len,
                    &mut size,
                    &mut trim,
                    &mut replacement,
                    &mut replacement_len,
                    &mut kind,
                );
                let bytes = |ptr: *const c_char, len: usize| {
                    std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
                };
                let text = |ptr, len| String::from_utf8_lossy(&bytes(ptr, len)).into_owned();
                capture.files.push(LiveFile {
                    name: text(name, name_len),
                    directory: text(directory, directory_len).into(),
                    size,
                    trim_to_size: trim != 0,
                    replacement: (replacement_len > 0).then(|| bytes(replacement, replacement_len)),
                    is_wal: kind == 1,
                });
            }
        }
        Ok(capture)
    }
}

impl Drop for LiveFileCapture {
    fn drop(&mut self) {
        // SAFETY: `raw` is the capture made in `capture`, released exactly once here, while
        // `self._db` (dropped after this) still keeps the instance open.
        unsafe { keyedstate_live_files_release(self.raw) };
    }
}

/// File names as C strings, for a list of `const char*` RocksDB reads.
fn c_strings<'a>(
    names: impl Iterator<Item = &'a [u8]>,
) -> std::result::Result<Vec<std::ffi::CString>, String> {
    names
        .map(std::ffi::CString::new)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| format!("a file name holds a NUL byte: {e}"))
}

/// The message RocksDB left in `error` (freed here), or `Ok` when it left none.
///
/// # Safety
/// `error` is null or a message RocksDB allocated, not used after this call.
unsafe fn take_error(error: *mut c_char) -> std::result::Result<(), String> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null `error` is a NUL-terminated string RocksDB allocated with malloc.
    unsafe {
        let message = CStr::from_ptr(error).to_string_lossy().into_owned();
        sys::rocksdb_free(error.cast::<c_void>());
        Err(message)
    }
}
