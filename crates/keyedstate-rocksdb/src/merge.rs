//! The list-append merge operator. List values are concatenated length-prefixed frames (see
//! `docs/formats.md`), so merging is concatenation: associative, with no delimiter to escape.

use rocksdb::MergeOperands;

/// The operator's name; RocksDB records it in the OPTIONS file and checks it on reopen.
pub(crate) const LIST_APPEND: &str = "keyedstate.list-append.v1";

pub(crate) fn list_append(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    let len = existing.map_or(0, <[u8]>::len) + operands.iter().map(<[u8]>::len).sum::<usize>();
    let mut merged = Vec::with_capacity(len);
    merged.extend_from_slice(existing.unwrap_or_default());
    for operand in operands {
        merged.extend_from_slice(operand);
    }
    Some(merged)
}
