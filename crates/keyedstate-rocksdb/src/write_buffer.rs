//! The write buffer: the task's most recent point writes (puts and deletes of values and of map
//! entries, list appends), held in memory and written to RocksDB as one `WriteBatch` when it is
//! full.
//!
//! Of a per-record `valueUpdate`'s ~4,800 instructions, ~3,500 were RocksDB's write path around
//! the memtable (a one-entry `WriteBatch` built and decoded, `WriteImpl`, the write thread and its
//! mutex), paid per record; a batch pays it once. The buffer gives per-record writes that
//! amortization. It is not a second copy of the state: reads look here first, and everything
//! that reads RocksDB other than a point read (scans, iterators, `MultiGet`, snapshots,
//! compactions, metrics, close) writes the buffer out first, so RocksDB then holds every write.
//! A list append is a merge operand, and merging is concatenation (`crate::merge`): appends onto
//! a buffered put or delete become a put of the concatenation, appends onto nothing buffered a
//! merge of the concatenated frames, which a read appends to RocksDB's value.
//! A checkpoint's synchronous part writes the buffer out first, so the write-ahead log it
//! captures holds every write; the log is not synced (a checkpoint is the durable copy), so
//! buffered writes are exactly as durable as the memtable's.
//!
//! Layout: keys and values back to back in one arena, and a hash table of slots pointing into
//! it; a write of a key already buffered appends its new value and repoints the slot (the old
//! bytes stay until the flush). Nothing is allocated per write once the arena and the table have
//! grown to their working size.

use hashbrown::HashTable;
use keyedstate_core::StateId;
use std::hash::BuildHasher;

/// What a buffered write of a key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Put,
    Delete,
    /// Frames to append to whatever RocksDB holds (a merge operand).
    Merge,
}

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    state: u32,
    kind: Kind,
    key_at: u32,
    key_len: u32,
    value_at: u32,
    value_len: u32,
}

/// One buffered write, as [`WriteBuffer::for_each`] and [`WriteBuffer::get`] hand it out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Write<'a> {
    pub(crate) state: StateId,
    pub(crate) kind: Kind,
    pub(crate) key: &'a [u8],
    /// The put's value or the merge's frames; empty for a delete.
    pub(crate) value: &'a [u8],
}

pub(crate) struct WriteBuffer {
    arena: Vec<u8>,
    table: HashTable<Slot>,
    hasher: foldhash::fast::FixedState,
    max_entries: usize,
    max_bytes: usize,
}

impl WriteBuffer {
    /// A buffer that holds up to `max_entries` distinct keys and `max_bytes` of keys and
    /// values; `max_entries` 0 buffers nothing.
    pub(crate) fn new(max_entries: usize, max_bytes: usize) -> Self {
        WriteBuffer {
            arena: Vec::new(),
            table: HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x6b65_7965_6473_7461),
            max_entries,
            // Offsets are u32.
            max_bytes: max_bytes.min(u32::MAX as usize / 2),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_entries > 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    fn hash(&self, state: StateId, key: &[u8]) -> u64 {
        self.hasher.hash_one((state as u32, key))
    }

    fn key_of(&self, slot: &Slot) -> &[u8] {
        &self.arena[slot.key_at as usize..(slot.key_at + slot.key_len) as usize]
    }

    fn value_of(&self, slot: &Slot) -> &[u8] {
        &self.arena[slot.value_at as usize..(slot.value_at + slot.value_len) as usize]
    }

    fn write_of<'s>(&'s self, slot: &Slot) -> Write<'s> {
        Write {
            state: slot.state as StateId,
            kind: slot.kind,
            key: self.key_of(slot),
            value: self.value_of(slot),
        }
    }

    /// The buffered write of `key` in `state`, or `None` when the key has none (RocksDB has its
    /// latest value).
    pub(crate) fn get(&self, state: StateId, key: &[u8]) -> Option<Write<'_>> {
        if self.table.is_empty() {
            return None;
        }
        let hash = self.hash(state, key);
        let slot = self.table.find(hash, |s| {
            s.hash == hash && s.state == state as u32 && self.key_of(s) == key
        })?;
        Some(self.write_of(slot))
    }

    /// Buffers a put (`Some`) or a delete (`None`) of `key` in `state`. Returns whether the
    /// buffer is full and must be written out now.
    pub(crate) fn write(&mut self, state: StateId, key: &[u8], value: Option<&[u8]>) -> bool {
        let kind = if value.is_some() {
            Kind::Put
        } else {
            Kind::Delete
        };
        let value = value.unwrap_or_default();
        let value_at = self.arena.len() as u32;
        self.arena.extend_from_slice(value);
        let (value_len, hash) = (value.len() as u32, self.hash(state, key));
        match self.find_mut(hash, state, key) {
            Some(slot) => {
                slot.kind = kind;
                slot.value_at = value_at;
                slot.value_len = value_len;
            }
            None => self.insert(hash, state, key, kind, value_at, value_len),
        }
        self.full()
    }

    /// Buffers an append of `frames` to the list at `key` in `state` (see the module's notes).
    /// Returns whether the buffer is full.
    pub(crate) fn append(&mut self, state: StateId, key: &[u8], frames: &[u8]) -> bool {
        let hash = self.hash(state, key);
        let arena_len = self.arena.len() as u32;
        let Some(slot) = self.find_mut(hash, state, key).copied() else {
            self.arena.extend_from_slice(frames);
            self.insert(
                hash,
                state,
                key,
                Kind::Merge,
                arena_len,
                frames.len() as u32,
            );
            return self.full();
        };
        let (kind, value_at) = match slot.kind {
            // The list is gone: what is appended is all of it.
            Kind::Delete => (Kind::Put, arena_len),
            // The value is the arena's last bytes: it grows in place.
            Kind::Put | Kind::Merge if slot.value_at + slot.value_len == arena_len => {
                (slot.kind, slot.value_at)
            }
            Kind::Put | Kind::Merge => {
                let (from, to) = (
                    slot.value_at as usize,
                    (slot.value_at + slot.value_len) as usize,
                );
                self.arena.extend_from_within(from..to);
                (slot.kind, arena_len)
            }
        };
        self.arena.extend_from_slice(frames);
        let value_len = self.arena.len() as u32 - value_at;
        let slot = self.find_mut(hash, state, key).expect("found above");
        slot.kind = kind;
        slot.value_at = value_at;
        slot.value_len = value_len;
        self.full()
    }

    fn find_mut(&mut self, hash: u64, state: StateId, key: &[u8]) -> Option<&mut Slot> {
        let arena = &self.arena;
        self.table.find_mut(hash, |s| {
            s.hash == hash
                && s.state == state as u32
                && arena[s.key_at as usize..(s.key_at + s.key_len) as usize] == *key
        })
    }

    fn insert(
        &mut self,
        hash: u64,
        state: StateId,
        key: &[u8],
        kind: Kind,
        value_at: u32,
        value_len: u32,
    ) {
        let key_at = self.arena.len() as u32;
        self.arena.extend_from_slice(key);
        self.table.insert_unique(
            hash,
            Slot {
                hash,
                state: state as u32,
                kind,
                key_at,
                key_len: key.len() as u32,
                value_at,
                value_len,
            },
            |s| s.hash,
        );
    }

    fn full(&self) -> bool {
        self.table.len() >= self.max_entries || self.arena.len() >= self.max_bytes
    }

    /// Hands every buffered write to `f` (one per key: the latest), in no particular order
    /// (each key has one); the buffer keeps them until [`Self::clear`].
    pub(crate) fn for_each<E>(
        &self,
        mut f: impl FnMut(Write<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.table
            .iter()
            .try_for_each(|slot| f(self.write_of(slot)))
    }

    /// Forgets every buffered write (once RocksDB holds them), keeping the memory.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.arena.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(
        state: StateId,
        kind: Kind,
        key: &'static [u8],
        value: &'static [u8],
    ) -> Write<'static> {
        Write {
            state,
            kind,
            key,
            value,
        }
    }

    #[test]
    fn the_latest_write_of_a_key_wins_and_clear_empties_the_buffer() {
        let mut buffer = WriteBuffer::new(3, 1 << 20);
        assert!(!buffer.write(0, b"a", Some(b"1")));
        assert!(!buffer.write(0, b"a", Some(b"22")));
        assert!(!buffer.write(1, b"a", None));
        assert_eq!(buffer.get(0, b"a"), Some(write(0, Kind::Put, b"a", b"22")));
        assert_eq!(buffer.get(1, b"a"), Some(write(1, Kind::Delete, b"a", b"")));
        assert_eq!(buffer.get(0, b"b"), None, "not buffered");
        assert!(buffer.write(0, b"b", Some(b"")), "three keys: full");
        let mut writes = Vec::new();
        buffer
            .for_each(|w| {
                writes.push((w.state, w.kind as u8, w.key.to_vec(), w.value.to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap();
        buffer.clear();
        writes.sort();
        assert_eq!(
            writes,
            vec![
                (0, Kind::Put as u8, b"a".to_vec(), b"22".to_vec()),
                (0, Kind::Put as u8, b"b".to_vec(), Vec::new()),
                (1, Kind::Delete as u8, b"a".to_vec(), Vec::new()),
            ]
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.get(0, b"a"), None);
    }

    #[test]
    fn appends_concatenate_onto_what_is_buffered() {
        let mut buffer = WriteBuffer::new(100, 1 << 20);
        buffer.append(0, b"m", b"1");
        buffer.append(0, b"m", b"2");
        assert_eq!(
            buffer.get(0, b"m"),
            Some(write(0, Kind::Merge, b"m", b"12")),
            "a merge of both"
        );
        buffer.write(0, b"p", Some(b"a"));
        buffer.append(0, b"m", b"3"); // not at the arena's end: copied
        buffer.append(0, b"p", b"b");
        assert_eq!(
            buffer.get(0, b"m"),
            Some(write(0, Kind::Merge, b"m", b"123"))
        );
        assert_eq!(
            buffer.get(0, b"p"),
            Some(write(0, Kind::Put, b"p", b"ab")),
            "a put of the whole list"
        );
        buffer.write(0, b"d", None);
        buffer.append(0, b"d", b"x");
        assert_eq!(
            buffer.get(0, b"d"),
            Some(write(0, Kind::Put, b"d", b"x")),
            "onto a delete: all of it"
        );
        buffer.write(0, b"m", Some(b"z"));
        assert_eq!(
            buffer.get(0, b"m"),
            Some(write(0, Kind::Put, b"m", b"z")),
            "a put replaces a merge"
        );
    }

    #[test]
    fn the_byte_limit_fills_the_buffer_too() {
        let mut buffer = WriteBuffer::new(1000, 16);
        assert!(!buffer.write(0, b"k", Some(b"1234")));
        assert!(
            buffer.write(0, b"k", Some(&[0; 12])),
            "rewrites count their bytes"
        );
    }
}
