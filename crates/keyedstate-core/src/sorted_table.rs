//! [`SortedTable`]: entries kept sorted per key group, in memory. It is the heap store of timers
//! (Flink's heap priority-queue set): a timer's entry key starts with its timestamp, so a key
//! group's earliest timer is its first entry, found without sorting anything. The heap backend
//! keeps its timer states in it, and so does the RocksDB backend configured with heap timers:
//! it lives in core so that neither engine depends on the other.
//!
//! As in the heap backend's hash tables, each key group sits behind an `Arc`: a snapshot clones the `Arc`s, and
//! the first write to a key group after that copies just that key group.

use crate::backend::{EntryKey, EntryScan, RawEntry, split_key_and_namespace};
use crate::error::Result;
use crate::key_group::KeyGroupRange;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct SortedTable {
    range: KeyGroupRange,
    /// Indexed by key group minus the range's start; keyed by framed key and namespace.
    groups: Vec<Arc<BTreeMap<Vec<u8>, Vec<u8>>>>,
}

impl SortedTable {
    /// An empty table for the key groups of `range`.
    pub fn new(range: KeyGroupRange) -> Self {
        SortedTable {
            range,
            groups: (0..range.len()).map(|_| Arc::default()).collect(),
        }
    }

    /// The key group of `key`, or `None` outside the table's range.
    fn offset(&self, key: EntryKey<'_>) -> Option<usize> {
        self.range
            .contains(key.key_group())
            .then(|| self.range.offset_of(key.key_group()))
    }

    pub fn get(&self, key: EntryKey<'_>) -> Option<&[u8]> {
        let group = &self.groups[self.offset(key)?];
        group.get(key.key_and_namespace()).map(Vec::as_slice)
    }

    /// Stores `value` at `key`; a key outside the table's range is ignored (callers check the
    /// range before: the typed layer, or a restore reading only the range's key groups).
    pub fn put(&mut self, key: EntryKey<'_>, value: &[u8]) {
        let Some(offset) = self.offset(key) else {
            return;
        };
        let group = Arc::make_mut(&mut self.groups[offset]);
        match group.get_mut(key.key_and_namespace()) {
            Some(slot) => {
                slot.clear();
                slot.extend_from_slice(value);
            }
            None => {
                group.insert(key.key_and_namespace().to_vec(), value.to_vec());
            }
        }
    }

    pub fn remove(&mut self, key: EntryKey<'_>) {
        // Do not copy a shared key group just to find nothing in it.
        if self.get(key).is_some() {
            let offset = self.range.offset_of(key.key_group());
            Arc::make_mut(&mut self.groups[offset]).remove(key.key_and_namespace());
        }
    }

    /// The number of entries.
    pub fn len(&self) -> u64 {
        self.groups.iter().map(|g| g.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.iter().all(|g| g.is_empty())
    }

    /// Visits the entries of `key_group` in key order (nothing outside the range).
    pub fn scan_group(&self, key_group: u16, f: &mut EntryScan<'_>) -> Result<ControlFlow<()>> {
        if !self.range.contains(key_group) {
            return Ok(ControlFlow::Continue(()));
        }
        for (key_and_ns, value) in self.groups[self.range.offset_of(key_group)].iter() {
            let parts = split_key_and_namespace(key_group, key_and_ns, &[])?;
            if f(RawEntry { parts, value })?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Visits every entry, key group by key group, each in key order.
    pub fn scan(&self, f: &mut EntryScan<'_>) -> Result<()> {
        for key_group in self.range.iter() {
            if self.scan_group(key_group, f)?.is_break() {
                break;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_group::MaxParallelism;

    fn key(group: u16, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![group as u8];
        out.extend_from_slice(bytes);
        out
    }

    #[test]
    fn a_key_groups_entries_come_out_in_key_order_and_snapshots_do_not_see_later_writes() {
        let range = MaxParallelism::new(128).unwrap().full_range();
        let mut table = SortedTable::new(range);
        for last in [9u8, 3, 7, 1] {
            let k = key(5, &[1, 0, 1, last]);
            table.put(EntryKey::new(&k, 5, 1), &[last]);
        }
        let snapshot = table.clone();
        let k = key(5, &[1, 0, 1, 0]);
        table.put(EntryKey::new(&k, 5, 1), b"later");
        let order = |t: &SortedTable| {
            let mut values = Vec::new();
            t.scan(&mut |entry| {
                values.push(entry.value.to_vec());
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
            values
        };
        assert_eq!(order(&snapshot), [[1], [3], [7], [9]]);
        assert_eq!(order(&table).first().unwrap(), b"later");
        assert_eq!((snapshot.len(), table.len()), (4, 5));
    }
}
