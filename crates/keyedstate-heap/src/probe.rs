//! [`ProbeTable`]: a hash table that is one array of entries, probed linearly.
//!
//! A lookup in a big table costs its cache misses more than its instructions. A SwissTable
//! (`hashbrown`) keeps its control bytes apart from its entries: a lookup reads a control
//! group, then the entry, two misses one after the other. Here the entries are the table: a
//! lookup starts at the entry the hash points to and compares keys there, so a hit in a
//! table far larger than the cache is one miss (a plain slot holds its key inline, see
//! [`crate::slot`]), and the next entries probed are mostly in the same cache line. The
//! table is at most [`MAX_LOAD`] full, so that a probe sequence stays short.
//!
//! Deletion shifts the entries after the removed one back where their probe sequences allow
//! (no tombstones), so a lookup stops at the first empty entry.

/// How full the array may be, in entries per slot: 5/8. At that load a hit probes about 1.8
/// slots and a miss about 4 (Knuth's estimates for linear probing); past it the array
/// doubles, to 5/16 full.
const MAX_LOAD: (usize, usize) = (5, 8);

/// The array's length when the first entry arrives.
const FIRST_CAPACITY: usize = 16;

#[derive(Clone)]
pub(crate) struct ProbeTable<E> {
    /// Empty, or a power of two long.
    slots: Vec<Option<E>>,
    len: usize,
}

impl<E> Default for ProbeTable<E> {
    fn default() -> Self {
        ProbeTable {
            slots: Vec::new(),
            len: 0,
        }
    }
}

/// Where a key is: at an index, or not there, and then where the probe ended (the empty
/// entry an insertion takes).
enum Probe {
    Found(usize),
    Vacant(usize),
}

impl<E> ProbeTable<E> {
    /// The entries, in the order of the array.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().flatten()
    }

    /// Reads the entry a probe from `hash` starts at. A loop that does nothing but this for a
    /// batch of keys lets the processor wait for all their cache misses at once; the probes
    /// afterwards branch on what they read, which lets it wait for one at a time.
    #[inline]
    pub(crate) fn touch(&self, hash: u64) -> bool {
        self.slots
            .get(hash as usize & self.mask())
            .is_some_and(Option::is_some)
    }

    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// Probes from `hash` for the entry that `eq` accepts. The table must not be empty.
    #[inline]
    fn probe(&self, hash: u64, mut eq: impl FnMut(&E) -> bool) -> Probe {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i] {
                None => return Probe::Vacant(i),
                Some(entry) if eq(entry) => return Probe::Found(i),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// How many entries a lookup from `hash` reads before it finds the one `eq` accepts or
    /// an empty one (tests hold the hash's spread to it).
    #[cfg(test)]
    pub(crate) fn probe_length(&self, hash: u64, eq: impl FnMut(&E) -> bool) -> usize {
        let end = match self.probe(hash, eq) {
            Probe::Found(i) | Probe::Vacant(i) => i,
        };
        (end.wrapping_sub(hash as usize) & self.mask()) + 1
    }

    /// The index of the entry that `eq` accepts, if there is one.
    #[inline]
    fn position(&self, hash: u64, eq: impl FnMut(&E) -> bool) -> Option<usize> {
        match self.len {
            0 => None,
            _ => match self.probe(hash, eq) {
                Probe::Found(i) => Some(i),
                Probe::Vacant(_) => None,
            },
        }
    }

    #[inline]
    pub(crate) fn find(&self, hash: u64, eq: impl FnMut(&E) -> bool) -> Option<&E> {
        self.slots[self.position(hash, eq)?].as_ref()
    }

    pub(crate) fn find_mut(&mut self, hash: u64, eq: impl FnMut(&E) -> bool) -> Option<&mut E> {
        let i = self.position(hash, eq)?;
        self.slots[i].as_mut()
    }

    /// The entry that `eq` accepts, made by `make` and inserted when there is none; `rehash`
    /// gives the hash of any entry, for when the array grows. Finding is inlined into the
    /// caller (an update of an existing entry is the common case), inserting is not.
    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        hash: u64,
        eq: impl FnMut(&E) -> bool,
        rehash: impl Fn(&E) -> u64,
        make: impl FnOnce() -> E,
    ) -> &mut E {
        let at = match self.len {
            0 => None,
            _ => match self.probe(hash, eq) {
                Probe::Found(i) => return self.slot_mut(i),
                Probe::Vacant(i) => Some(i),
            },
        };
        self.insert(hash, at, rehash, make)
    }

    /// Inserts the entry `make` gives at `at`, the empty entry a probe from `hash` ended at
    /// (`None`: the table is empty), growing the array first when it is full.
    #[inline(never)]
    fn insert(
        &mut self,
        hash: u64,
        mut at: Option<usize>,
        rehash: impl Fn(&E) -> u64,
        make: impl FnOnce() -> E,
    ) -> &mut E {
        let (num, den) = MAX_LOAD;
        if (self.len + 1) * den > self.slots.len() * num {
            self.grow(&rehash);
            at = None;
        }
        let i = at.unwrap_or_else(|| self.vacant_from(hash));
        self.slots[i] = Some(make());
        self.len += 1;
        self.slot_mut(i)
    }

    #[inline]
    fn slot_mut(&mut self, i: usize) -> &mut E {
        match &mut self.slots[i] {
            Some(entry) => entry,
            None => unreachable!("a probe found or filled entry {i}"),
        }
    }

    /// The first empty entry from `hash` on.
    fn vacant_from(&self, hash: u64) -> usize {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.slots[i].is_some() {
            i = (i + 1) & mask;
        }
        i
    }

    /// Doubles the array and puts every entry where its hash now points.
    fn grow(&mut self, rehash: &impl Fn(&E) -> u64) {
        let capacity = (self.slots.len() * 2).max(FIRST_CAPACITY);
        let old = std::mem::replace(
            &mut self.slots,
            std::iter::repeat_with(|| None).take(capacity).collect(),
        );
        for entry in old.into_iter().flatten() {
            let i = self.vacant_from(rehash(&entry));
            self.slots[i] = Some(entry);
        }
    }

    /// Removes the entry that `eq` accepts, if there is one; `rehash` gives the hash of any
    /// entry, to move the ones after it back.
    pub(crate) fn remove(
        &mut self,
        hash: u64,
        eq: impl FnMut(&E) -> bool,
        rehash: impl Fn(&E) -> u64,
    ) -> Option<E> {
        let found = self.position(hash, eq)?;
        let removed = self.slots[found].take();
        self.len -= 1;
        // Every entry up to the next empty one may have probed past the hole: an entry moves
        // into it unless its own start lies after the hole (cyclically), where a lookup from
        // that start would not pass the hole.
        let mask = self.mask();
        let (mut hole, mut i) = (found, (found + 1) & mask);
        while let Some(entry) = &self.slots[i] {
            let start = rehash(entry) as usize & mask;
            if i.wrapping_sub(start) & mask >= i.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[i].take();
                hole = i;
            }
            i = (i + 1) & mask;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::ProbeTable;
    use std::collections::HashMap;

    /// Hashes that collide on purpose: 16 starts at each end of the array (the low bits are
    /// the start), so that probe sequences run long, overlap and wrap around the end.
    fn hash(key: u64) -> u64 {
        match key % 2 {
            0 => key / 2 % 16,
            _ => u64::MAX - key / 2 % 16,
        }
    }

    #[test]
    fn inserts_finds_and_removes_as_a_map_does_under_collisions() {
        let mut table: ProbeTable<(u64, u64)> = ProbeTable::default();
        let mut model: HashMap<u64, u64> = HashMap::new();
        let mut state = 1u64;
        for step in 0..20_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let key = state % 300;
            let eq = |e: &(u64, u64)| e.0 == key;
            let rehash = |e: &(u64, u64)| hash(e.0);
            match state % 3 {
                0 => {
                    let removed = table.remove(hash(key), eq, rehash).map(|e| e.1);
                    assert_eq!(removed, model.remove(&key), "step {step}: remove {key}");
                }
                _ => {
                    table
                        .get_or_insert_with(hash(key), eq, rehash, || (key, 0))
                        .1 = step;
                    model.insert(key, step);
                }
            }
            assert_eq!(table.len, model.len(), "step {step}");
            for probe in [key, key + 1, (key * 7) % 300] {
                let found = table.find(hash(probe), |e| e.0 == probe).map(|e| e.1);
                assert_eq!(
                    found,
                    model.get(&probe).copied(),
                    "step {step}: find {probe}"
                );
            }
        }
        let mut entries: Vec<(u64, u64)> = table.iter().copied().collect();
        entries.sort();
        let mut expected: Vec<(u64, u64)> = model.into_iter().collect();
        expected.sort();
        assert_eq!(entries, expected);
    }

    #[test]
    fn removing_an_entry_moves_back_the_entries_that_probed_past_it() {
        // Keys 1 and 33 start at the last entry, 0 and 32 at the first: 1 sits at the end,
        // then 33, 0 and 32 wrapped around to the front.
        let mut table: ProbeTable<u64> = ProbeTable::default();
        let rehash = |k: &u64| hash(*k);
        for key in [1, 33, 0, 32] {
            table.get_or_insert_with(hash(key), |e| *e == key, rehash, || key);
        }
        // 32 moves back next to its start; then 33 back across the end to its start, and 32
        // to its own.
        table.remove(hash(0), |e| *e == 0, rehash);
        assert_eq!(table.find(hash(32), |e| *e == 32), Some(&32));
        table.remove(hash(1), |e| *e == 1, rehash);
        for key in [33, 32] {
            assert_eq!(table.find(hash(key), |e| *e == key), Some(&key));
        }
        assert!(table.find(hash(0), |e| *e == 0).is_none());
    }

    #[test]
    fn an_empty_table_finds_nothing_and_removes_nothing() {
        let mut table: ProbeTable<u64> = ProbeTable::default();
        assert!(table.find(7, |_| true).is_none());
        assert!(table.find_mut(7, |_| true).is_none());
        assert!(table.remove(7, |_| true, |_| 7).is_none());
        assert_eq!(table.iter().count(), 0);
    }
}
