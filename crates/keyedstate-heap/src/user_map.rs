//! [`UserMap`]: the user keys and values of one map-state entry, in the byte order of the user
//! keys (the order RocksDB holds them in, which iteration and snapshots follow).
//!
//! A lookup in it is on the path of every `MapState::get` and `put`. It is a `BTreeMap`, whose
//! nodes keep their keys side by side, so a lookup in a small map scans one or two cache lines
//! of keys (a sorted vector of key-value pairs, bisected or scanned, was 10-30% slower at
//! 500,000 maps: its probes and pairs spread over more lines). What costs is the comparison:
//! with `[u8]` keys, each step of the scan calls `memcmp`, about 270 of a `mapGet`'s 860
//! instructions with 10 user keys. So the keys are [`UserKey`]s, whose order decides on the
//! first 8 bytes as one big-endian word (the same order as byte by byte: fixed-width `ks1`
//! integers are 8 bytes or fewer), and a lookup of a key of up to 16 bytes compares as a
//! `UserKey` too, built inline without allocating; longer keys are looked up as bytes.

use crate::table::Bytes;
use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::ops::Bound;

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

/// Keys up to this long are looked up as a [`UserKey`] built inline (no allocation).
const INLINE_KEY: usize = 16;

#[derive(Clone, Default)]
pub(crate) struct UserMap(BTreeMap<UserKey, Bytes>);

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

impl UserMap {
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    #[inline]
    pub(crate) fn get(&self, user_key: &[u8]) -> Option<&[u8]> {
        let value = if user_key.len() <= INLINE_KEY {
            self.0.get(&UserKey(Bytes::from_slice(user_key)))
        } else {
            self.0.get(user_key)
        };
        value.map(Bytes::as_slice)
    }

    /// Sets the value of `user_key`, inserting it if it is new. A short key is built inline
    /// once and found with one search, whether it is new or not; a long one is searched as
    /// bytes first, so that updating it does not allocate.
    pub(crate) fn put(&mut self, user_key: &[u8], value: &[u8]) {
        let replace = |slot: &mut Bytes| {
            slot.clear();
            slot.extend_from_slice(value);
        };
        if user_key.len() <= INLINE_KEY {
            match self.0.entry(UserKey(Bytes::from_slice(user_key))) {
                Entry::Occupied(mut entry) => replace(entry.get_mut()),
                Entry::Vacant(entry) => {
                    entry.insert(Bytes::from_slice(value));
                }
            }
        } else if let Some(slot) = self.0.get_mut(user_key) {
            replace(slot);
        } else {
            self.0.insert(
                UserKey(Bytes::from_slice(user_key)),
                Bytes::from_slice(value),
            );
        }
    }

    /// Removes `user_key`, if present.
    pub(crate) fn remove(&mut self, user_key: &[u8]) {
        self.0.remove(user_key);
    }

    /// The entries in user-key order.
    pub(crate) fn iter(&self) -> Iter<'_> {
        self.after(None)
    }

    /// The entries whose user key sorts after `after` (all of them for `None`), in order.
    pub(crate) fn after(&self, after: Option<&[u8]>) -> Iter<'_> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Iter(self.0.range::<[u8], _>((from, Bound::Unbounded)))
    }
}

/// The entries of a [`UserMap`], in user-key order.
pub(crate) struct Iter<'a>(std::collections::btree_map::Range<'a, UserKey, Bytes>);

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = self.0.next()?;
        Some((key.0.as_slice(), value.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same operations on a `UserMap` and a `BTreeMap`, which must agree throughout.
    fn check_against_btree(keys: &[Vec<u8>]) {
        let mut map = UserMap::default();
        let mut model = BTreeMap::<Vec<u8>, Vec<u8>>::new();
        for (i, key) in keys.iter().enumerate() {
            let value = vec![i as u8; i % 20];
            map.put(key, &value);
            model.insert(key.clone(), value);
            if i % 7 == 3 {
                let gone = &keys[i / 2];
                map.remove(gone);
                model.remove(gone);
            }
            assert_eq!(map.len(), model.len());
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
    }

    #[test]
    fn maps_order_lookup_and_iterate_as_a_btree_map_of_bytes() {
        // Keys of every length around the 8-byte word: shorter, equal, longer, sharing prefixes.
        let mut keys = Vec::new();
        for i in 0u64..60 {
            let word = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes();
            keys.push(word[..(i % 9) as usize].to_vec());
            keys.push(word.to_vec());
            keys.push([&word[..], &[i as u8; 3]].concat());
            keys.push([&[0u8; 8][..], &word[..(i % 9) as usize]].concat());
        }
        check_against_btree(&keys);
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
