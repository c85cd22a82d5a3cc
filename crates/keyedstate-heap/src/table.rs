//! A table per key group, so that snapshots and rescales read whole key groups. Each key group's
//! map sits behind an `Arc`: a snapshot clones the `Arc`s (its whole synchronous part), and the
//! first write to a key group after that copies just that key group (copy-on-write).

use keyedstate_core::{EntryKey, KeyGroupRange, Result};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Bytes of a key or value, held inline up to 16 bytes: a `(key, namespace)` of a small key and
/// a small value sit in the hash table's slot itself, so a lookup touches one cache line for
/// them instead of following two more pointers (see docs/performance.md).
pub(crate) type Bytes = SmallVec<[u8; 16]>;

/// One key group's entries. foldhash with a random seed per table: much cheaper than SipHash on
/// short keys, and still seeded, so keys from user data cannot be chosen to collide in advance.
pub(crate) type Group<T> = HashMap<Bytes, T, foldhash::fast::RandomState>;

/// A callback visiting (key group, framed key and namespace, entry).
pub(crate) type TableScan<'f, T> = dyn FnMut(u16, &[u8], &T) -> Result<ControlFlow<()>> + 'f;

#[derive(Clone)]
pub(crate) struct KeyGroupTable<T> {
    range: KeyGroupRange,
    /// Indexed by key group minus the range's start; keyed by framed key and namespace.
    groups: Vec<Arc<Group<T>>>,
}

impl<T: Clone> KeyGroupTable<T> {
    pub(crate) fn new(range: KeyGroupRange) -> Self {
        KeyGroupTable {
            range,
            groups: (0..range.len()).map(|_| Arc::default()).collect(),
        }
    }

    fn group(&self, key: EntryKey<'_>) -> &Group<T> {
        // The typed layer admits only keys of this backend's range.
        &self.groups[self.range.offset_of(key.key_group())]
    }

    fn group_mut(&mut self, key: EntryKey<'_>) -> &mut Group<T> {
        Arc::make_mut(&mut self.groups[self.range.offset_of(key.key_group())])
    }

    /// Entries in all key groups, each counted by `size`.
    pub(crate) fn count(&self, size: impl Fn(&T) -> usize) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| g.values())
            .map(|v| size(v) as u64)
            .sum()
    }

    /// The number of key groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The table of the key group at `offset` in the range.
    pub(crate) fn group_at(&self, offset: usize) -> &Group<T> {
        &self.groups[offset]
    }

    /// The same, for changing it (copied first if a snapshot shares it).
    pub(crate) fn group_at_mut(&mut self, offset: usize) -> &mut Group<T> {
        Arc::make_mut(&mut self.groups[offset])
    }

    /// The keys of the key group at `offset`.
    pub(crate) fn keys_of_group(&self, offset: usize) -> Vec<Vec<u8>> {
        self.groups[offset].keys().map(|k| k.to_vec()).collect()
    }

    pub(crate) fn get(&self, key: EntryKey<'_>) -> Option<&T> {
        self.group(key).get(key.key_and_namespace())
    }

    pub(crate) fn get_mut(&mut self, key: EntryKey<'_>) -> Option<&mut T> {
        // Do not copy a shared key group just to find nothing in it.
        self.get(key)?;
        self.group_mut(key).get_mut(key.key_and_namespace())
    }

    /// The entry at `key`, created with `make` when absent. Only a new entry copies the key.
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: EntryKey<'_>,
        make: impl FnOnce() -> T,
    ) -> &mut T {
        let group = self.group_mut(key);
        let bytes = key.key_and_namespace();
        if !group.contains_key(bytes) {
            group.insert(Bytes::from_slice(bytes), make());
        }
        group.get_mut(bytes).expect("entry was just ensured")
    }

    pub(crate) fn remove(&mut self, key: EntryKey<'_>) {
        if self.get(key).is_some() {
            self.group_mut(key).remove(key.key_and_namespace());
        }
    }

    /// Visits every entry in key-group order.
    pub(crate) fn scan(&self, f: &mut TableScan<'_, T>) -> Result<()> {
        for key_group in self.range.iter() {
            if self.scan_group(key_group, false, f)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Visits the entries of one key group, sorted by key bytes when `sorted` (as RocksDB orders
    /// them, so both engines write identical full snapshots).
    pub(crate) fn scan_group(
        &self,
        key_group: u16,
        sorted: bool,
        f: &mut TableScan<'_, T>,
    ) -> Result<ControlFlow<()>> {
        if !self.range.contains(key_group) {
            return Ok(ControlFlow::Continue(()));
        }
        let group = &self.groups[self.range.offset_of(key_group)];
        let mut entries: Vec<(&Bytes, &T)> = group.iter().collect();
        if sorted {
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        }
        for (key, value) in entries {
            if f(key_group, key.as_slice(), value)?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }
}
