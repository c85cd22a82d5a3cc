//! A table per key group, so that snapshots and rescales read whole key groups. Each key group's
//! hash table sits behind an `Arc`: a snapshot clones the `Arc`s (its whole synchronous part),
//! and the first write to a key group after that copies just that key group (copy-on-write).

use crate::probe::ProbeTable;
use keyedstate_core::{EntryKey, KeyGroupRange, Result};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::sync::Arc;

/// Bytes of a map state's entry key, user keys and values, held inline up to 16 bytes.
pub(crate) type Bytes = SmallVec<[u8; 16]>;

/// An entry of a table: it carries its own key (framed key and namespace), so that a plain
/// table's slot can hold key and value together (see [`crate::slot`]).
pub(crate) trait Keyed: Clone {
    fn key(&self) -> &[u8];

    /// Whether this is the entry of `key`; an entry may answer without reading all of its key.
    #[inline]
    fn has_key(&self, key: &[u8]) -> bool {
        same_key(self.key(), key)
    }

    /// The entry as a sorted scan visits it: a copy when copying is cheap (a plain slot with
    /// its bytes inline), otherwise a reference (see [`KeyGroupTable::scan_group`]).
    fn sort_copy(&self) -> Cow<'_, Self> {
        Cow::Borrowed(self)
    }
}

/// One key group's entries.
type Group<E> = ProbeTable<E>;

/// A callback visiting (key group, entry).
pub(crate) type TableScan<'f, E> = dyn FnMut(u16, &E) -> Result<ControlFlow<()>> + 'f;

/// The first and the last 8 bytes of a slice of 8 to 16 bytes (a `u64` key in the void
/// namespace is 10), as two words that overlap when it is shorter than 16: together they hold
/// every byte, so that such slices are compared and copied a word at a time instead of by
/// calls to `memcmp` and `memcpy`. `None` for other lengths.
#[inline(always)]
pub(crate) fn two_words(s: &[u8]) -> Option<(u64, u64)> {
    let n = s.len();
    if !(8..=16).contains(&n) {
        return None;
    }
    let word = |at: usize| u64::from_ne_bytes(s[at..at + 8].try_into().unwrap_or([0; 8]));
    Some((word(0), word(n - 8)))
}

/// Whether two entry keys are equal.
#[inline]
pub(crate) fn same_key(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (two_words(a), two_words(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The first 16 bytes of `key`, zero-padded, as a big-endian number in two words (so that a
/// sorted pair of it and a reference is 24 bytes, not padded to a `u128`'s 16-byte alignment).
/// Of two keys whose prefixes differ, the smaller prefix is the lexicographically smaller key
/// (a key that ends inside the prefix pads with zeros, and is then a prefix of the other, or
/// smaller at the first byte that differs); equal prefixes need the keys compared.
#[inline]
fn sort_prefix(key: &[u8]) -> (u64, u64) {
    let mut word = [0u8; 16];
    let n = key.len().min(16);
    word[..n].copy_from_slice(&key[..n]);
    let prefix = u128::from_be_bytes(word);
    ((prefix >> 64) as u64, prefix as u64)
}

#[derive(Clone)]
pub(crate) struct KeyGroupTable<E> {
    range: KeyGroupRange,
    /// Hashes the keys of every key group: foldhash with a random seed per table, much cheaper
    /// than SipHash on short keys and still seeded, so keys from user data cannot be chosen to
    /// collide in advance. Copies of the table (snapshots) keep it, as they must: a hash table
    /// is probed with the hasher that filled it.
    hasher: foldhash::fast::RandomState,
    /// Indexed by key group minus the range's start.
    groups: Vec<Arc<Group<E>>>,
}

impl<E: Keyed> KeyGroupTable<E> {
    pub(crate) fn new(range: KeyGroupRange) -> Self {
        KeyGroupTable {
            range,
            hasher: foldhash::fast::RandomState::default(),
            groups: (0..range.len()).map(|_| Arc::default()).collect(),
        }
    }

    fn offset(&self, key: EntryKey<'_>) -> usize {
        // The typed layer admits only keys of this backend's range.
        self.range.offset_of(key.key_group())
    }

    // The whole key through foldhash's slice path. (Hashing a key of 8 to 16 bytes as the
    // pair of its first and last words, f44d4d5, took 7-15 instructions off an access but made
    // the hash weak on these keys, whose two words share six bytes: with some seeds the probe
    // sequences ran four times as long, 569 instead of 342 instructions for a `valueUpdate`.)
    #[inline]
    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Entries in all key groups, each counted by `size`.
    pub(crate) fn count(&self, size: impl Fn(&E) -> usize) -> u64 {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .map(|e| size(e) as u64)
            .sum()
    }

    /// The number of key groups.
    pub(crate) fn groups(&self) -> usize {
        self.groups.len()
    }

    /// The keys of the key group at `offset` in the range.
    pub(crate) fn keys_of_group(&self, offset: usize) -> Vec<Vec<u8>> {
        self.groups[offset]
            .iter()
            .map(|e| e.key().to_vec())
            .collect()
    }

    /// The entry of `key` in the key group at `offset`.
    #[inline]
    pub(crate) fn get_at(&self, offset: usize, key: &[u8]) -> Option<&E> {
        self.groups[offset].find(self.hash(key), |e| e.has_key(key))
    }

    /// The same, for changing it; a key group a snapshot shares is copied only when the entry
    /// is there.
    pub(crate) fn get_mut_at(&mut self, offset: usize, key: &[u8]) -> Option<&mut E> {
        let hash = self.hash(key);
        self.groups[offset].find(hash, |e| e.has_key(key))?;
        Arc::make_mut(&mut self.groups[offset]).find_mut(hash, |e| e.has_key(key))
    }

    /// Removes the entry of `key` in the key group at `offset`, if there is one.
    pub(crate) fn remove_at(&mut self, offset: usize, key: &[u8]) {
        let hash = self.hash(key);
        if self.groups[offset].find(hash, |e| e.has_key(key)).is_none() {
            return;
        }
        let hasher = &self.hasher;
        Arc::make_mut(&mut self.groups[offset]).remove(
            hash,
            |e| e.has_key(key),
            |e| hasher.hash_one(e.key()),
        );
    }

    #[inline]
    pub(crate) fn get(&self, key: EntryKey<'_>) -> Option<&E> {
        self.get_at(self.offset(key), key.key_and_namespace())
    }

    /// The entries of `keys`, as `f(i, entry)`: every key hashed and its table entry read
    /// first ([`Self::touch_all`]), then the tables probed.
    #[inline]
    pub(crate) fn get_many(
        &self,
        keys: &[EntryKey<'_>],
        f: &mut dyn FnMut(usize, Option<&E>) -> Result<()>,
    ) -> Result<()> {
        let hashes = self.touch_all(keys);
        for (i, (key, &hash)) in keys.iter().zip(&hashes).enumerate() {
            let bytes = key.key_and_namespace();
            f(
                i,
                self.groups[self.offset(*key)].find(hash, |e| e.has_key(bytes)),
            )?;
        }
        Ok(())
    }

    /// Hashes `keys` and reads the table entry each probe will start at, in a loop of its
    /// own, so that the cache misses of a batch overlap (see [`ProbeTable::touch`]); returns
    /// the hashes.
    pub(crate) fn touch_all(&self, keys: &[EntryKey<'_>]) -> Vec<u64> {
        let hashes: Vec<u64> = keys
            .iter()
            .map(|key| self.hash(key.key_and_namespace()))
            .collect();
        let occupied = keys
            .iter()
            .zip(&hashes)
            .filter(|&(key, &hash)| self.groups[self.offset(*key)].touch(hash))
            .count();
        // The reads are the point: kept, though their result is not used.
        std::hint::black_box(occupied);
        hashes
    }

    pub(crate) fn get_mut(&mut self, key: EntryKey<'_>) -> Option<&mut E> {
        self.get_mut_at(self.offset(key), key.key_and_namespace())
    }

    pub(crate) fn remove(&mut self, key: EntryKey<'_>) {
        self.remove_at(self.offset(key), key.key_and_namespace());
    }

    /// The entry at `key`, created with `make(key bytes)` when absent.
    #[inline]
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: EntryKey<'_>,
        make: impl FnOnce(&[u8]) -> E,
    ) -> &mut E {
        let hash = self.hash(key.key_and_namespace());
        self.get_or_insert_hashed(key, hash, make)
    }

    /// [`Self::get_or_insert_with`] for a key whose hash is known (by [`Self::touch_all`]).
    #[inline]
    pub(crate) fn get_or_insert_hashed(
        &mut self,
        key: EntryKey<'_>,
        hash: u64,
        make: impl FnOnce(&[u8]) -> E,
    ) -> &mut E {
        let bytes = key.key_and_namespace();
        let offset = self.offset(key);
        let hasher = &self.hasher;
        Arc::make_mut(&mut self.groups[offset]).get_or_insert_with(
            hash,
            |e| e.has_key(bytes),
            |e| hasher.hash_one(e.key()),
            || make(bytes),
        )
    }

    /// Visits every entry in key-group order.
    pub(crate) fn scan(&self, f: &mut TableScan<'_, E>) -> Result<()> {
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
        f: &mut TableScan<'_, E>,
    ) -> Result<ControlFlow<()>> {
        if !self.range.contains(key_group) {
            return Ok(ControlFlow::Continue(()));
        }
        let group = &self.groups[self.range.offset_of(key_group)];
        if !sorted {
            return visit_each(key_group, group.iter(), f);
        }
        let order = sort_by_prefix(group.iter().map(|e| (sort_prefix(e.key()), e)).collect());
        // Sorted, the entries are in random places of the table. A loop that does nothing but
        // copy them out lets the processor wait for many of those cache misses at once; the
        // visits below (framing, checksums) between two reads of the table would let it wait
        // for one at a time.
        let entries: Vec<Cow<'_, E>> = order.iter().map(|(_, e)| e.sort_copy()).collect();
        drop(order);
        visit_each(key_group, entries.iter().map(|e| &**e), f)
    }
}

/// An entry beside the prefix of its key.
type Prefixed<'e, E> = ((u64, u64), &'e E);

/// Key groups of fewer entries are sorted in one piece: the bucket pass would not pay.
const BUCKETED_FROM: usize = 1 << 12;

/// Buckets of the bucket pass: 2^11, so that a key group of 250,000 entries has about 120 in
/// each, a few kilobytes that sort inside the L1 cache.
const BUCKET_BITS: u32 = 11;

/// `pairs` sorted by key bytes. They are compared by the prefix held beside each entry first:
/// no pointer chased into the table (a cache miss per comparison at scale) unless two prefixes
/// are equal.
///
/// A large key group is first spread into buckets by the prefix's first [`BUCKET_BITS`] bits
/// after the ones that all its keys share (one counting pass, one moving pass), and then each
/// bucket is sorted on its own. The buckets are in prefix order, so this is the order of one
/// sort; but one sort of a whole key group works through megabytes at every level of its
/// recursion, and the small sorts work in cache. (Tried and slower: an LSD radix sort over
/// all 16 prefix bytes, each of whose passes scatters the whole group; and bucketing copies
/// of the entries instead of references, read from the table in its own order, which moves
/// 40 bytes an entry instead of 24.)
fn sort_by_prefix<E: Keyed>(mut pairs: Vec<Prefixed<'_, E>>) -> Vec<Prefixed<'_, E>> {
    let by_key = |(pa, a): &Prefixed<'_, E>, (pb, b): &Prefixed<'_, E>| {
        pa.cmp(pb).then_with(|| a.key().cmp(b.key()))
    };
    let wide = |(hi, lo): (u64, u64)| (u128::from(hi) << 64) | u128::from(lo);
    let Some(&(first, _)) = pairs.first() else {
        return pairs;
    };
    let first = wide(first);
    let differ = pairs.iter().fold(0, |d, &(p, _)| d | (wide(p) ^ first));
    if pairs.len() < BUCKETED_FROM || differ == 0 {
        pairs.sort_unstable_by(by_key);
        return pairs;
    }
    // Every prefix has the bits of `first` above the first bit that differs: shifted out, the
    // prefixes keep their order, and their next bits number the buckets in order.
    let shared = differ.leading_zeros();
    let bucket = |p: (u64, u64)| ((wide(p) << shared) >> (128 - BUCKET_BITS)) as usize;
    let mut starts = vec![0usize; (1 << BUCKET_BITS) + 1];
    for &(p, _) in &pairs {
        starts[bucket(p) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    // Filled with copies of one pair, each overwritten once below.
    let mut sorted = vec![pairs[0]; pairs.len()];
    let mut next = starts.clone();
    for &pair in &pairs {
        let b = bucket(pair.0);
        sorted[next[b]] = pair;
        next[b] += 1;
    }
    for bounds in starts.windows(2) {
        sorted[bounds[0]..bounds[1]].sort_unstable_by(by_key);
    }
    sorted
}

/// Calls `f` on each of `entries` of `key_group` until it breaks.
fn visit_each<'e, E: 'e>(
    key_group: u16,
    entries: impl Iterator<Item = &'e E>,
    f: &mut TableScan<'_, E>,
) -> Result<ControlFlow<()>> {
    for entry in entries {
        if f(key_group, entry)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

#[cfg(test)]
mod tests {
    use super::{BUCKETED_FROM, KeyGroupTable, Keyed, same_key, sort_by_prefix, sort_prefix};
    use crate::probe::ProbeTable;
    use keyedstate_core::{KeyGroupRange, MaxParallelism};

    #[derive(Clone)]
    struct Key(Vec<u8>);

    impl Keyed for Key {
        fn key(&self) -> &[u8] {
            &self.0
        }
    }

    #[test]
    fn the_tables_hash_spreads_u64_keys_whatever_its_seed() {
        // The entry keys of u64 keys in the void namespace, as a table hashes them: structured
        // bytes (a frame length, the key big-endian, the namespace's frame) on which a weak
        // hash clusters. At this load (5,000 of 8,192 entries) linear probing reads about 1.8
        // entries per hit with a good hash; a hash of the key's two overlapping words read 4
        // times as many with some seeds (f44d4d5, reverted).
        let max_p = MaxParallelism::new(2).unwrap();
        let range = KeyGroupRange::new(0, 0, max_p).unwrap();
        for seed in 0..30 {
            let table: KeyGroupTable<Key> = KeyGroupTable::new(range);
            // Dense keys, every other one of 0..10,000 (as two key groups split them).
            let keys: Vec<Vec<u8>> = (0..5_000u64)
                .map(|k| {
                    let mut key = vec![8];
                    key.extend_from_slice(&(2 * k + seed % 2).to_be_bytes());
                    key.push(0);
                    key
                })
                .collect();
            let mut probe: ProbeTable<Vec<u8>> = ProbeTable::default();
            for key in &keys {
                probe.get_or_insert_with(
                    table.hash(key),
                    |e| e == key,
                    |e| table.hash(e),
                    || key.clone(),
                );
            }
            let read: usize = keys
                .iter()
                .map(|key| probe.probe_length(table.hash(key), |e| e == key))
                .sum();
            let mean = read as f64 / keys.len() as f64;
            assert!(
                mean < 2.5,
                "table {seed}: {mean:.2} entries read per lookup"
            );
        }
    }

    /// `keys` in the order `sort_by_prefix` gives them.
    fn bucket_sorted(keys: &[Key]) -> Vec<Vec<u8>> {
        let pairs = keys.iter().map(|k| (sort_prefix(&k.0), k)).collect();
        sort_by_prefix(pairs)
            .into_iter()
            .map(|(_, k)| k.0.clone())
            .collect()
    }

    #[test]
    fn bucketed_sort_orders_large_groups_as_their_bytes() {
        let mut state = 7u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let n = BUCKETED_FROM * 4;
        // Key bytes from (index, random number).
        type Shape = Box<dyn Fn(u64, u64) -> Vec<u8>>;
        let shapes: Vec<Shape> = vec![
            // The benchmark's: a framed big-endian u64 of a few varying bytes, the void namespace.
            Box::new(|i, _| [&[8][..], &(i * 3).to_be_bytes(), &[0]].concat()),
            // Random bytes of random lengths, all varying from the first byte.
            Box::new(|_, r| r.to_le_bytes()[..(r % 9) as usize].to_vec()),
            // A long shared prefix, so that keys differ only after the 16 prefix bytes.
            Box::new(|_, r| [&[5u8; 20][..], &r.to_be_bytes()[..(r % 3) as usize]].concat()),
            // Few distinct prefixes, many keys each, and duplicates.
            Box::new(|i, r| [&[(r % 3) as u8; 17][..], &[(i % 5) as u8]].concat()),
        ];
        for (s, shape) in shapes.iter().enumerate() {
            for len in [n, BUCKETED_FROM - 1, 1, 0] {
                let keys: Vec<Key> = (0..len as u64).map(|i| Key(shape(i, next()))).collect();
                let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.0.clone()).collect();
                expected.sort();
                assert_eq!(bucket_sorted(&keys), expected, "shape {s}, {len} keys");
            }
        }
    }

    #[test]
    fn prefix_then_bytes_orders_keys_as_their_bytes() {
        // Lengths around the 16-byte prefix, zero bytes (which padding also adds) and 0xff.
        let mut keys: Vec<Vec<u8>> = Vec::new();
        for n in 0..=20usize {
            for fill in [0u8, 1, 0xff] {
                keys.push(vec![fill; n]);
                let mut k = vec![fill; n];
                if n > 0 {
                    k[n - 1] = 7;
                }
                keys.push(k);
            }
        }
        let mut by_prefix = keys.clone();
        by_prefix.sort_by(|a, b| sort_prefix(a).cmp(&sort_prefix(b)).then_with(|| a.cmp(b)));
        keys.sort();
        assert_eq!(by_prefix, keys);
    }

    #[test]
    fn same_key_agrees_with_slice_equality_at_every_length() {
        let base: Vec<u8> = (0u8..24).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert!(same_key(a, a));
            for flip in 0..n {
                let mut b = a.to_vec();
                b[flip] ^= 1;
                assert!(!same_key(a, &b), "length {n}, byte {flip}");
            }
            if n > 0 {
                assert!(!same_key(a, &base[..n - 1]));
            }
        }
    }
}
