//! A table per key group, so that snapshots and rescales read whole key groups.

use keyedstate_core::{EntryKey, KeyGroupRange, Result};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// A callback visiting (key group, framed key and namespace, entry).
pub(crate) type TableScan<'f, T> = dyn FnMut(u16, &[u8], &T) -> Result<ControlFlow<()>> + 'f;

pub(crate) struct KeyGroupTable<T> {
    range: KeyGroupRange,
    /// Indexed by key group minus the range's start; keyed by framed key and namespace.
    groups: Vec<HashMap<Vec<u8>, T>>,
}

impl<T> KeyGroupTable<T> {
    pub(crate) fn new(range: KeyGroupRange) -> Self {
        KeyGroupTable {
            range,
            groups: (0..range.len()).map(|_| HashMap::new()).collect(),
        }
    }

    fn group(&self, key: EntryKey<'_>) -> &HashMap<Vec<u8>, T> {
        // The typed layer admits only keys of this backend's range.
        &self.groups[self.range.offset_of(key.key_group())]
    }

    fn group_mut(&mut self, key: EntryKey<'_>) -> &mut HashMap<Vec<u8>, T> {
        &mut self.groups[self.range.offset_of(key.key_group())]
    }

    pub(crate) fn get(&self, key: EntryKey<'_>) -> Option<&T> {
        self.group(key).get(key.key_and_namespace())
    }

    pub(crate) fn get_mut(&mut self, key: EntryKey<'_>) -> Option<&mut T> {
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
            group.insert(bytes.to_vec(), make());
        }
        group.get_mut(bytes).expect("entry was just ensured")
    }

    pub(crate) fn remove(&mut self, key: EntryKey<'_>) {
        self.group_mut(key).remove(key.key_and_namespace());
    }

    /// Visits every entry in key-group order.
    pub(crate) fn scan(&self, f: &mut TableScan<'_, T>) -> Result<()> {
        for (key_group, group) in self.range.iter().zip(&self.groups) {
            for (key, value) in group {
                if f(key_group, key, value)?.is_break() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}
