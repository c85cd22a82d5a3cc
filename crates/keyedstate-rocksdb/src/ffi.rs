//! The one place RocksDB's C API is reached directly, for what the rocksdb crate does not wrap:
//! a compaction filter that can rewrite a value it has not been given as `'static` bytes (the
//! TTL filter drops expired elements from a list).
//!
//! A filter *factory* is installed, not a filter: RocksDB may run one filter object on several
//! compaction threads at once, while each filter a factory creates serves one compaction, so it
//! can own the buffer its rewritten values live in.

use librocksdb_sys as sys;
use rocksdb::{AsRawPtr, Options};
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
