//! The list-append merge operator. List values are concatenated length-prefixed frames (see
//! `docs/formats.md`), so merging is concatenation: associative, with no delimiter to escape.
//!
//! For a list state with a TTL the same operator also drops expired elements from what it
//! merges: RocksDB's C API gives the compaction filter only plain values, never merge operands,
//! so without this the elements appended by `add` would stay on disk until a later compaction
//! found them merged into a value. Dropping an expired element is a cleanup, which every TTL
//! visibility allows; the bytes are still a concatenation of frames, so the operator keeps its
//! name (a TTL list always merges this way: turning TTL on or off is incompatible).

use keyedstate_core::key_layout::{list_elements, put_framed};
use keyedstate_core::ttl::{Unexpired, unexpired};
use rocksdb::MergeOperands;

/// The operator's name; RocksDB records it in the OPTIONS file and checks it on reopen.
pub(crate) const LIST_APPEND: &str = "keyedstate.list-append.v1";

pub(crate) fn list_append(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    Some(concatenate(existing, operands))
}

/// [`list_append`] for a list with a TTL of `ttl_millis`, judged at `now`: the concatenation
/// without its expired elements. When every element has expired the last one stays, so the
/// value is still a list (never stored empty) that reads judge expired and that the compaction
/// filter removes whole; a merge operator cannot delete. A corrupt element keeps the
/// concatenation as it is, for a read to report.
pub(crate) fn list_append_unexpired(
    existing: Option<&[u8]>,
    operands: &MergeOperands,
    ttl_millis: u64,
    now: u64,
) -> Option<Vec<u8>> {
    let merged = concatenate(existing, operands);
    let mut kept = Vec::new();
    Some(match unexpired(&merged, true, ttl_millis, now, &mut kept) {
        Ok(Unexpired::All) | Err(_) => merged,
        Ok(Unexpired::Part) => kept,
        Ok(Unexpired::Nothing) => match list_elements(&merged).last() {
            Some(Ok(last)) => {
                put_framed(&mut kept, last);
                kept
            }
            _ => merged,
        },
    })
}

fn concatenate(existing: Option<&[u8]>, operands: &MergeOperands) -> Vec<u8> {
    let len = existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
    let mut merged = Vec::with_capacity(len);
    merged.extend_from_slice(existing.unwrap_or_default());
    for operand in operands {
        merged.extend_from_slice(operand);
    }
    merged
}
