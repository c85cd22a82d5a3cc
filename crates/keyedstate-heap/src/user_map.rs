//! [`UserMap`]: the user keys and values of one map-state entry, in the byte order of the user
//! keys (the order RocksDB holds them in, which iteration and snapshots follow).
//!
//! A lookup in it is on the path of every `MapState::get` and `put`, and at 500,000 keys its
//! cost is the cache lines it reads. Most maps of keyed state are small, so a small map is
//! packed into one buffer, as Redis packs small hashes into a listpack: a count of its entries
//! (one byte), then the entries side by side in user-key order, each `[key length: u8][value
//! length: u8][key][value]`, scanned from the front. Ten `u64` user keys with `f64` values are
//! 181 bytes, three cache lines read in
//! order, where a `BTreeMap` leaf spreads the same keys and values over 544 bytes (keys and
//! values apart, 24 bytes each), and its search costs more instructions than the scan.
//!
//! A map that would outgrow [`PACKED_BYTES`] or [`PACKED_ENTRIES`], or holds a key or value
//! longer than 255 bytes,
//! becomes a `BTreeMap` and stays one (a map that shrank again keeps its tree: no flapping).
//! Its keys are [`UserKey`]s, whose order decides on the first 8 bytes as one big-endian word
//! (the same order as byte by byte: fixed-width `ks1` integers are 8 bytes or fewer), so that
//! comparing does not call `memcmp`; a lookup of a key of up to 16 bytes compares as a
//! `UserKey` too, built inline without allocating; longer keys are looked up as bytes. The
//! packed scan compares with the same word order.

use crate::table::Bytes;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::{Bound, Range};

/// A user key, ordered as its bytes are, compared a word at a time.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct UserKey(Bytes);

impl Ord for UserKey {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        compare(&self.0, &other.0)
    }
}

impl PartialOrd for UserKey {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// Sound for `BTreeMap` because `compare` is the byte order, the order of `[u8]`.
impl Borrow<[u8]> for UserKey {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

/// Keys up to this long are looked up in a tree as a [`UserKey`] built inline (no allocation).
const INLINE_KEY: usize = 16;

/// The most bytes a packed map holds (entry headers included): 28 entries of a `u64` key and a
/// `u64` value. A scan over them reads 8 cache lines in order, about as many as a two-level
/// tree's search touches.
const PACKED_BYTES: usize = 512;

/// The most entries a packed map holds, so that a map of tiny entries is not scanned through
/// a hundred of them.
const PACKED_ENTRIES: u8 = 32;

/// Bytes before a packed map's first entry: its count of entries.
const COUNT: usize = 1;

/// Bytes before an entry's key: its key length and its value length.
const HEADER: usize = 2;

type Tree = BTreeMap<UserKey, Bytes>;

#[derive(Clone)]
pub(crate) enum UserMap {
    /// Entries packed in user-key order (see the module's documentation).
    Packed(Vec<u8>),
    /// Boxed, so that a map is as small as the packed form's `Vec` (24 bytes).
    Tree(Box<Tree>),
}

const _: () = assert!(std::mem::size_of::<UserMap>() == 24);

impl Default for UserMap {
    fn default() -> Self {
        UserMap::Packed(Vec::new())
    }
}

/// The byte order of `a` and `b`, with the first 8 bytes compared as one word.
#[inline]
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        (Some(x), Some(y)) => match u64::from_be_bytes(*x).cmp(&u64::from_be_bytes(*y)) {
            Ordering::Equal if a.len() == 8 && b.len() == 8 => Ordering::Equal,
            Ordering::Equal => a[8..].cmp(&b[8..]),
            unequal => unequal,
        },
        _ => a.cmp(b),
    }
}

/// One entry of a packed map: where it starts and its key's and value's lengths.
#[derive(Clone, Copy)]
struct Packed {
    at: usize,
    key_len: usize,
    value_len: usize,
}

impl Packed {
    /// The entry at `at` of `buf`, which must start an entry.
    #[inline(always)]
    fn at(buf: &[u8], at: usize) -> Self {
        Packed {
            at,
            key_len: usize::from(buf[at]),
            value_len: usize::from(buf[at + 1]),
        }
    }

    #[inline(always)]
    fn key(self) -> Range<usize> {
        self.at + HEADER..self.at + HEADER + self.key_len
    }

    #[inline(always)]
    fn value(self) -> Range<usize> {
        let start = self.key().end;
        start..start + self.value_len
    }

    #[inline(always)]
    fn end(self) -> usize {
        self.value().end
    }
}

/// The entry of `key` in a packed map (`Ok`), or the offset where it would be inserted (`Err`).
#[inline]
fn find(buf: &[u8], key: &[u8]) -> Result<Packed, usize> {
    // An empty map has no count either: an insertion writes it.
    let mut rest = buf.get(COUNT..).unwrap_or_default();
    while let [key_len, value_len, tail @ ..] = rest {
        let (key_len, value_len) = (usize::from(*key_len), usize::from(*value_len));
        let (entry_key, tail) = tail.split_at(key_len);
        let order = compare(entry_key, key);
        if order.is_lt() {
            rest = &tail[value_len..];
            continue;
        }
        let at = buf.len() - rest.len();
        return match order {
            Ordering::Equal => Ok(Packed {
                at,
                key_len,
                value_len,
            }),
            _ => Err(at),
        };
    }
    Err(buf.len())
}

/// Replaces `buf[range]` by `len` bytes, moving what follows, and returns them to be written.
fn open(buf: &mut Vec<u8>, range: Range<usize>, len: usize) -> &mut [u8] {
    let tail = range.end..buf.len();
    let new_end = range.start + len;
    let grown = buf.len() - range.len() + len;
    if grown > buf.len() {
        buf.resize(grown, 0);
    }
    buf.copy_within(tail, new_end);
    buf.truncate(grown);
    &mut buf[range.start..new_end]
}

/// The entries of a packed map's bytes.
fn entries(buf: &[u8]) -> Iter<'_> {
    Iter::Packed(buf.get(COUNT..).unwrap_or_default())
}

/// The packed map's bytes as a tree.
fn unpack(buf: &[u8]) -> Box<Tree> {
    Box::new(
        entries(buf)
            .map(|(key, value)| (UserKey(Bytes::from_slice(key)), Bytes::from_slice(value)))
            .collect(),
    )
}

/// Sets the value of `user_key` in `tree`, inserting it if it is new. A short key is built
/// inline once and found with one search, whether it is new or not; a long one is searched as
/// bytes first, so that updating it does not allocate.
fn tree_put(tree: &mut Tree, user_key: &[u8], value: &[u8]) {
    let replace = |slot: &mut Bytes| {
        slot.clear();
        slot.extend_from_slice(value);
    };
    if user_key.len() <= INLINE_KEY {
        match tree.entry(UserKey(Bytes::from_slice(user_key))) {
            Entry::Occupied(mut entry) => replace(entry.get_mut()),
            Entry::Vacant(entry) => {
                entry.insert(Bytes::from_slice(value));
            }
        }
    } else if let Some(slot) = tree.get_mut(user_key) {
        replace(slot);
    } else {
        tree.insert(
            UserKey(Bytes::from_slice(user_key)),
            Bytes::from_slice(value),
        );
    }
}

impl UserMap {
    pub(crate) fn len(&self) -> usize {
        match self {
            UserMap::Packed(buf) => buf.first().map_or(0, |&count| usize::from(count)),
            UserMap::Tree(tree) => tree.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            UserMap::Packed(buf) => buf.is_empty(),
            UserMap::Tree(tree) => tree.is_empty(),
        }
    }

    #[inline]
    pub(crate) fn get(&self, user_key: &[u8]) -> Option<&[u8]> {
        match self {
            UserMap::Packed(buf) => find(buf, user_key).ok().map(|e| &buf[e.value()]),
            UserMap::Tree(tree) => {
                let value = if user_key.len() <= INLINE_KEY {
                    tree.get(&UserKey(Bytes::from_slice(user_key)))
                } else {
                    tree.get(user_key)
                };
                value.map(Bytes::as_slice)
            }
        }
    }

    /// Sets the value of `user_key`, inserting it if it is new. A packed map becomes a tree
    /// when the entry would take it past [`PACKED_BYTES`] or [`PACKED_ENTRIES`], or its key or
    /// value is longer than 255 bytes.
    pub(crate) fn put(&mut self, user_key: &[u8], value: &[u8]) {
        let buf = match self {
            UserMap::Tree(tree) => return tree_put(tree, user_key, value),
            UserMap::Packed(buf) => buf,
        };
        let lengths = u8::try_from(user_key.len())
            .ok()
            .zip(u8::try_from(value.len()).ok());
        let found = find(buf, user_key);
        let grown = match found {
            Ok(entry) => buf.len() - entry.value_len + value.len(),
            Err(_) => buf.len().max(COUNT) + HEADER + user_key.len() + value.len(),
        };
        let room = grown <= PACKED_BYTES;
        let count = buf.first().copied().unwrap_or(0);
        match (lengths, found) {
            (Some(_), Ok(entry)) if entry.value_len == value.len() => {
                buf[entry.value()].copy_from_slice(value);
            }
            (Some((_, value_len)), Ok(entry)) if room => {
                buf[entry.at + 1] = value_len;
                open(buf, entry.value(), value.len()).copy_from_slice(value);
            }
            (Some((key_len, value_len)), Err(at)) if room && count < PACKED_ENTRIES => {
                if buf.is_empty() {
                    buf.push(0);
                }
                buf[0] += 1;
                let at = at.max(COUNT);
                let gap = open(buf, at..at, HEADER + user_key.len() + value.len());
                gap[0] = key_len;
                gap[1] = value_len;
                let (key, rest) = gap[HEADER..].split_at_mut(user_key.len());
                key.copy_from_slice(user_key);
                rest.copy_from_slice(value);
            }
            _ => {
                let mut tree = unpack(buf);
                tree_put(&mut tree, user_key, value);
                *self = UserMap::Tree(tree);
            }
        }
    }

    /// Removes `user_key`, if present.
    pub(crate) fn remove(&mut self, user_key: &[u8]) {
        match self {
            UserMap::Packed(buf) => {
                if let Ok(entry) = find(buf, user_key) {
                    buf.drain(entry.at..entry.end());
                    buf[0] -= 1;
                    if buf[0] == 0 {
                        buf.clear();
                    }
                }
            }
            UserMap::Tree(tree) => {
                tree.remove(user_key);
            }
        }
    }

    /// The entries in user-key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        self.after(None)
    }

    /// The entries whose user key sorts after `after` (all of them for `None`), in order.
    pub(crate) fn after(&self, after: Option<&[u8]>) -> Iter<'_> {
        match self {
            UserMap::Packed(buf) => {
                let from = after.map_or(COUNT.min(buf.len()), |key| match find(buf, key) {
                    Ok(entry) => entry.end(),
                    Err(at) => at,
                });
                Iter::Packed(&buf[from..])
            }
            UserMap::Tree(tree) => {
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                Iter::Tree(tree.range::<[u8], _>((from, Bound::Unbounded)))
            }
        }
    }

    #[cfg(test)]
    fn is_packed(&self) -> bool {
        matches!(self, UserMap::Packed(_))
    }
}

/// The entries of a [`UserMap`], in user-key order.
pub(crate) enum Iter<'a> {
    /// The packed entries not yet visited.
    Packed(&'a [u8]),
    Tree(std::collections::btree_map::Range<'a, UserKey, Bytes>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Packed(rest) => {
                if rest.is_empty() {
                    return None;
                }
                let entry = Packed::at(rest, 0);
                let item = (&rest[entry.key()], &rest[entry.value()]);
                *rest = &rest[entry.end()..];
                Some(item)
            }
            Iter::Tree(range) => {
                let (key, value) = range.next()?;
                Some((key.0.as_slice(), value.as_slice()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on a `UserMap` and a `BTreeMap`, which must agree throughout; the
    /// value put for the `i`th key is `value(i)`. Returns whether the map ended packed.
    fn check_against_btree(keys: &[Vec<u8>], value: impl Fn(usize) -> Vec<u8>) -> bool {
        let mut map = UserMap::default();
        let mut model = BTreeMap::<Vec<u8>, Vec<u8>>::new();
        for (i, key) in keys.iter().enumerate() {
            map.put(key, &value(i));
            model.insert(key.clone(), value(i));
            if i % 7 == 3 {
                let gone = &keys[i / 2];
                map.remove(gone);
                model.remove(gone);
            }
            if i % 5 == 2 {
                // The value of a key already there, changed to another length.
                let again = &keys[i / 3];
                let longer = value(i + 3);
                map.put(again, &longer);
                model.insert(again.clone(), longer);
            }
            assert_eq!(map.len(), model.len());
            assert_eq!(map.is_empty(), model.is_empty());
            for probe in keys {
                assert_eq!(map.get(probe), model.get(probe).map(Vec::as_slice));
            }
            let ours: Vec<_> = map.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            let theirs: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(ours, theirs);
            for after in keys.iter().step_by(5) {
                let ours: Vec<_> = map.after(Some(after)).map(|(k, _)| k.to_vec()).collect();
                let theirs: Vec<_> = model
                    .range::<Vec<u8>, _>((Bound::Excluded(after), Bound::Unbounded))
                    .map(|(k, _)| k.clone())
                    .collect();
                assert_eq!(ours, theirs);
            }
        }
        map.is_packed()
    }

    /// Keys of every length around the 8-byte word: shorter, equal, longer, sharing prefixes.
    fn keys(n: u64) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        for i in 0..n {
            let word = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
            keys.push(word[..(i % 9) as usize].to_vec());
            keys.push(word.to_vec());
            keys.push([&word[..], &[i as u8; 3]].concat());
            keys.push([&[0u8; 8][..], &word[..(i % 9) as usize]].concat());
        }
        keys
    }

    #[test]
    fn small_maps_stay_packed_and_agree_with_a_btree_map_of_bytes() {
        let packed = check_against_btree(&keys(4), |i| vec![i as u8; i % 20]);
        assert!(packed, "16 short entries fit in {PACKED_BYTES} bytes");
    }

    #[test]
    fn maps_that_outgrow_the_packed_form_agree_with_a_btree_map_of_bytes() {
        let packed = check_against_btree(&keys(60), |i| vec![i as u8; i % 20]);
        assert!(!packed, "240 entries do not fit in {PACKED_BYTES} bytes");
    }

    #[test]
    fn a_value_longer_than_255_bytes_turns_a_small_map_into_a_tree() {
        // Value lengths around the one-byte length field's limit, the long ones rare.
        let value = |i: usize| vec![i as u8; if i % 6 == 5 { 250 + i % 12 } else { i % 4 }];
        let packed = check_against_btree(&keys(3), value);
        assert!(!packed);
        let mut map = UserMap::default();
        map.put(b"k", &[1; 255]);
        assert!(map.is_packed());
        map.put(b"k", &[2; 256]);
        assert!(!map.is_packed());
        assert_eq!(map.get(b"k"), Some(&[2; 256][..]));
    }

    #[test]
    fn a_map_of_more_than_32_entries_is_a_tree_however_small_they_are() {
        let mut map = UserMap::default();
        for key in 0..PACKED_ENTRIES {
            map.put(&[key], &[]);
        }
        assert!(map.is_packed());
        assert_eq!(map.len(), usize::from(PACKED_ENTRIES));
        map.put(&[0], &[1]);
        assert!(map.is_packed(), "an update adds no entry");
        map.put(&[PACKED_ENTRIES], &[]);
        assert!(!map.is_packed());
        assert_eq!(map.len(), usize::from(PACKED_ENTRIES) + 1);
        let keys: Vec<u8> = map.iter().map(|(k, _)| k[0]).collect();
        assert_eq!(keys, (0..=PACKED_ENTRIES).collect::<Vec<_>>());
        assert_eq!(map.get(&[0]), Some(&[1][..]));
    }

    #[test]
    fn removing_every_entry_leaves_an_empty_packed_map() {
        let mut map = UserMap::default();
        map.put(b"a", b"1");
        map.put(b"b", b"2");
        map.remove(b"a");
        map.remove(b"b");
        assert!(map.is_empty());
        assert_eq!(map.len(), 0);
        assert_eq!(map.iter().count(), 0);
        assert!(matches!(&map, UserMap::Packed(buf) if buf.is_empty()));
        map.put(b"c", b"3");
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&b"c"[..], &b"3"[..])]);
    }

    #[test]
    fn a_key_longer_than_255_bytes_turns_a_small_map_into_a_tree() {
        let mut map = UserMap::default();
        map.put(b"a", b"1");
        map.put(&[7; 256], b"2");
        assert!(!map.is_packed());
        let entries: Vec<_> = map.iter().collect();
        // In byte order: 7 before b'a'.
        assert_eq!(
            entries,
            [(&[7; 256][..], &b"2"[..]), (&b"a"[..], &b"1"[..])]
        );
    }

    #[test]
    fn word_comparison_is_byte_order() {
        let cases: [(&[u8], &[u8]); 6] = [
            (&[0, 0, 0, 0, 0, 0, 0, 1], &[0, 0, 0, 0, 0, 0, 1, 0]),
            (
                &[1, 0, 0, 0, 0, 0, 0, 0],
                &[0, 255, 255, 255, 255, 255, 255, 255],
            ),
            (&[1, 2, 3, 4, 5, 6, 7, 8], &[1, 2, 3, 4, 5, 6, 7, 8, 0]),
            (
                &[1, 2, 3, 4, 5, 6, 7, 8, 1],
                &[1, 2, 3, 4, 5, 6, 7, 8, 0, 5],
            ),
            (&[1, 2, 3], &[1, 2, 3, 4, 5, 6, 7, 8]),
            (&[], &[0]),
        ];
        for (a, b) in cases {
            assert_eq!(compare(a, b), a.cmp(b), "{a:?} against {b:?}");
            assert_eq!(compare(b, a), b.cmp(a), "{b:?} against {a:?}");
            assert_eq!(compare(a, a), Ordering::Equal);
        }
    }
}
