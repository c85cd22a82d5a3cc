//! The memtable of keyed state: a hash table of sorted linked lists, one per key (RocksDB's
//! `HashLinkList`), found by a prefix extractor that cuts an entry key after
//! `[key group][framed key]`.
//!
//! Every access of a record goes to one key's entries, so a lookup or insert hashes to that
//! key's bucket and walks only its entries (a value, the namespaces of a window operator, a
//! map's user keys) instead of a skip list over the whole memtable; `docs/config.md` has the
//! measurements. A bucket holds its entries in a sorted linked list, so a key with one entry
//! (a value state's) is one node behind its bucket's pointer: a read or in-place update costs
//! the bucket and the node, two cache misses, where a hash of skip lists (RocksDB's
//! `HashSkipList`, keyedstate's memtable until 2026-12-07) also reads a skip-list header and
//! searches the several keys that share a bucket through it. A bucket past 256 entries (a big
//! map, a list with many appends in one memtable) becomes a skip list of its own.
//! What must see more than one key (scans of a key group or state, snapshots) reads in total
//! order (`total_order_seek`); a map's iteration stays within its key's prefix
//! (`prefix_same_as_start`). Timer states keep the plain skip list: their pops walk key groups
//! in timestamp order, across keys.
//!
//! A flush must hand RocksDB the memtable's entries in order. RocksDB's hash memtables do that
//! by building a skip list of every entry, one insert at a time (most of an incremental
//! checkpoint's time at 50,000 changed keys). keyedstate wraps the memtable
//! (`cpp/sorted_flush.cc`, installed by [`crate::ffi::set_sorted_hash_link_list`]): the wrapper
//! also notes every inserted entry in an array, and an immutable memtable's total-order
//! iterator sorts that array once (by the first 16 bytes of each key, then RocksDB's
//! comparator) instead. RocksDB checks each flush's key order and entry count, and fails a
//! flush that is wrong; the checkpoint that waits for it then fails with that error.
//! `Memtable::SkipList` keeps RocksDB's skip list.
//!
//! Updates are in place (`inplace_update_support`, with either memtable): a put of a value no larger than the one
//! the mutable memtable holds for that key overwrites it instead of adding an entry, so a hot
//! key's updates neither grow the memtable nor cause flushes and compactions. RocksDB gives up
//! point-in-time reads of the mutable memtable for it, which keyedstate never makes: snapshots
//! flush the memtables first and read the native checkpoint's files, no RocksDB snapshot or
//! iterator of the live instance is open while the task writes (a map's iteration reads one
//! chunk per iterator, see `MapIter`), and merges (list appends) are never in place.

use keyedstate_core::key_layout::get_framed;
use rocksdb::{Options, ReadOptions, SliceTransform};

/// The default hash buckets per memtable (`RocksDbConfig::key_hash_buckets`): 500,000 pointers
/// (4 MB), allocated and zeroed with each memtable and charged to its memory.
/// Fewer buckets make the per-bucket lists longer; more cost the checkpoint's pause, whose
/// memtable switch creates the next memtable (1,000,000 buckets: a 5.2-5.3 ms pause against
/// 3.6-3.9 ms, records no faster at 500,000 keys; `docs/config.md`).
pub(crate) const BUCKETS: usize = 500_000;

/// The name RocksDB records for the extractor; a database opened with another fails to open.
const EXTRACTOR: &str = "keyedstate.key-prefix.v1";

/// `[key group][framed key]` of an entry key with a key-group prefix of `prefix_len` bytes; the
/// whole input for bytes that are not an entry key (nothing RocksDB passes here is, but a
/// prefix extractor must not fail).
fn key_prefix(entry_key: &[u8], prefix_len: usize) -> &[u8] {
    match entry_key.get(prefix_len..).map(get_framed) {
        Some(Ok((_, rest))) => &entry_key[..entry_key.len() - rest.len()],
        _ => entry_key,
    }
}

fn key_prefix_1(entry_key: &[u8]) -> &[u8] {
    key_prefix(entry_key, 1)
}

fn key_prefix_2(entry_key: &[u8]) -> &[u8] {
    key_prefix(entry_key, 2)
}

/// Sets the per-key hash memtable on the options of a keyed state's column family.
pub(crate) fn use_key_hash_memtable(opts: &mut Options, prefix_len: usize, buckets: usize) {
    let extract: fn(&[u8]) -> &[u8] = if prefix_len == 1 {
        key_prefix_1
    } else {
        key_prefix_2
    };
    opts.set_prefix_extractor(SliceTransform::create(EXTRACTOR, extract, None));
    crate::ffi::set_sorted_hash_link_list(opts, buckets);
}

/// Read options for an iteration over more than one key (a key group, a state).
pub(crate) fn total_order() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_total_order_seek(true);
    options
}

/// Read options for an iteration within one key's entries (a map).
pub(crate) fn within_key() -> ReadOptions {
    let mut options = ReadOptions::default();
    options.set_prefix_same_as_start(true);
    options
}

#[cfg(test)]
mod tests {
    use super::key_prefix;

    #[test]
    fn the_prefix_ends_after_the_framed_key() {
        // kg 0x37, key of 8 bytes, void namespace, user key "a".
        let mut entry = vec![0x37, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x2a];
        let prefix = entry.clone();
        entry.extend_from_slice(&[0x00, 0x01, b'a']);
        assert_eq!(key_prefix(&entry, 1), &prefix[..]);
        assert_eq!(key_prefix(&prefix, 1), &prefix[..]);
        // Two-byte key groups, the empty key.
        assert_eq!(
            key_prefix(&[0x00, 0x78, 0x00, 0x00], 2),
            &[0x00, 0x78, 0x00]
        );
        // Not an entry key: the whole input.
        assert_eq!(key_prefix(&[0x01, 0x09, 0x00], 1), &[0x01, 0x09, 0x00]);
        assert_eq!(key_prefix(&[0x01], 1), &[0x01]);
    }
}
