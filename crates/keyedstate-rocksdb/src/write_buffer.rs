//! The write buffer: the task's most recent point writes (puts and deletes of values and of map
//! entries), held in memory and written to RocksDB as one `WriteBatch` when it is full.
//!
//! Of a per-record `valueUpdate`'s ~4,800 instructions, ~3,500 were RocksDB's write path around
//! the memtable (a one-entry `WriteBatch` built and decoded, `WriteImpl`, the write thread and its
//! mutex), paid per record; a batch pays it once. The buffer gives per-record writes that
//! amortization. It is not a second copy of the state: reads look here first, and everything
//! that reads RocksDB other than a point read (scans, iterators, `MultiGet`, merges, snapshots,
//! compactions, metrics, close) writes the buffer out first, so RocksDB then holds every write.
//! Writes go without the WAL in any case (a checkpoint is the durable copy), so buffered writes
//! are exactly as durable as the memtable's.
//!
//! Layout: keys and values back to back in one arena, and a hash table of slots pointing into
//! it; a write of a key already buffered appends its new value and repoints the slot (the old
//! bytes stay until the flush). Nothing is allocated per write once the arena and the table have
//! grown to their working size.

use hashbrown::HashTable;
use keyedstate_core::StateId;
use std::hash::BuildHasher;

/// The value length that marks a buffered delete.
const DELETED: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    hash: u64,
    state: u32,
    key_at: u32,
    key_len: u32,
    value_at: u32,
    /// [`DELETED`] for a delete.
    value_len: u32,
}

/// One buffered write, as [`WriteBuffer::for_each`] hands it out.
pub(crate) struct Write<'a> {
    pub(crate) state: StateId,
    pub(crate) key: &'a [u8],
    /// `None`: a delete.
    pub(crate) value: Option<&'a [u8]>,
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

    /// The buffered write of `key` in `state`: `Some(Some(value))` a put, `Some(None)` a delete,
    /// `None` when the key has no buffered write (RocksDB has its latest value).
    pub(crate) fn get(&self, state: StateId, key: &[u8]) -> Option<Option<&[u8]>> {
        if self.table.is_empty() {
            return None;
        }
        let hash = self.hash(state, key);
        let slot = self.table.find(hash, |s| {
            s.hash == hash && s.state == state as u32 && self.key_of(s) == key
        })?;
        Some((slot.value_len != DELETED).then(|| {
            &self.arena[slot.value_at as usize..(slot.value_at + slot.value_len) as usize]
        }))
    }

    /// Buffers a put (`Some`) or a delete (`None`) of `key` in `state`. Returns whether the
    /// buffer is full and must be written out now.
    pub(crate) fn write(&mut self, state: StateId, key: &[u8], value: Option<&[u8]>) -> bool {
        let hash = self.hash(state, key);
        let value_at = self.arena.len() as u32;
        let value_len = match value {
            Some(value) => {
                self.arena.extend_from_slice(value);
                value.len() as u32
            }
            None => DELETED,
        };
        let (arena, table, hasher_state) = (&mut self.arena, &mut self.table, state as u32);
        let found = table.find_mut(hash, |s| {
            s.hash == hash
                && s.state == hasher_state
                && arena[s.key_at as usize..(s.key_at + s.key_len) as usize] == *key
        });
        match found {
            Some(slot) => {
                slot.value_at = value_at;
                slot.value_len = value_len;
            }
            None => {
                let key_at = arena.len() as u32;
                arena.extend_from_slice(key);
                table.insert_unique(
                    hash,
                    Slot {
                        hash,
                        state: hasher_state,
                        key_at,
                        key_len: key.len() as u32,
                        value_at,
                        value_len,
                    },
                    |s| s.hash,
                );
            }
        }
        self.table.len() >= self.max_entries || self.arena.len() >= self.max_bytes
    }

    /// Hands every buffered write to `f` (one per key: the latest), in no particular order
    /// (each key has one); the buffer keeps them until [`Self::clear`].
    pub(crate) fn for_each<E>(
        &self,
        mut f: impl FnMut(Write<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        for slot in self.table.iter() {
            let value = (slot.value_len != DELETED).then(|| {
                &self.arena[slot.value_at as usize..(slot.value_at + slot.value_len) as usize]
            });
            f(Write {
                state: slot.state as StateId,
                key: self.key_of(slot),
                value,
            })?;
        }
        Ok(())
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

    #[test]
    fn the_latest_write_of_a_key_wins_and_clear_empties_the_buffer() {
        let mut buffer = WriteBuffer::new(3, 1 << 20);
        assert!(!buffer.write(0, b"a", Some(b"1")));
        assert!(!buffer.write(0, b"a", Some(b"22")));
        assert!(!buffer.write(1, b"a", None));
        assert_eq!(buffer.get(0, b"a"), Some(Some(&b"22"[..])));
        assert_eq!(buffer.get(1, b"a"), Some(None), "a delete");
        assert_eq!(buffer.get(0, b"b"), None, "not buffered");
        assert!(buffer.write(0, b"b", Some(b"")), "three keys: full");
        let mut writes = Vec::new();
        buffer
            .for_each(|w| {
                writes.push((w.state, w.key.to_vec(), w.value.map(<[u8]>::to_vec)));
                Ok::<(), ()>(())
            })
            .unwrap();
        buffer.clear();
        writes.sort();
        assert_eq!(
            writes,
            vec![
                (0, b"a".to_vec(), Some(b"22".to_vec())),
                (0, b"b".to_vec(), Some(Vec::new())),
                (1, b"a".to_vec(), None),
            ]
        );
        assert!(buffer.is_empty());
        assert_eq!(buffer.get(0, b"a"), None);
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
