//! [`UserMap`]: the user keys and values of one map-state entry, in the byte order of the user
//! keys (the order RocksDB holds them in, which iteration and snapshots follow).
//!
//! Most maps are small (a few to some dozens of user keys per key and namespace), and a lookup
//! in them is on the path of every `MapState::get` and `put`. A `BTreeMap<Bytes, Bytes>` searched
//! them linearly, comparing each user key through `memcmp`: about 270 of a `mapGet`'s 860
//! instructions with 10 user keys. So a small map is one vector sorted by user key, searched by
//! bisection with a comparison that decides on the first 8 bytes as one big-endian word (the
//! same order as comparing them byte by byte; fixed-width `ks1` integers are 8 bytes or fewer);
//! past [`SMALL`] entries, where inserting into the vector would move many entries, the map
//! becomes a `BTreeMap`.

use crate::table::Bytes;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;

/// The most entries a map holds as a sorted vector.
const SMALL: usize = 32;

#[derive(Clone)]
pub(crate) enum UserMap {
    Small(Vec<(Bytes, Bytes)>),
    Large(BTreeMap<Bytes, Bytes>),
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

impl Default for UserMap {
    fn default() -> Self {
        UserMap::Small(Vec::new())
    }
}

impl UserMap {
    pub(crate) fn len(&self) -> usize {
        match self {
            UserMap::Small(entries) => entries.len(),
            UserMap::Large(map) => map.len(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    fn search(entries: &[(Bytes, Bytes)], user_key: &[u8]) -> Result<usize, usize> {
        entries.binary_search_by(|(key, _)| compare(key, user_key))
    }

    #[inline]
    pub(crate) fn get(&self, user_key: &[u8]) -> Option<&[u8]> {
        match self {
            UserMap::Small(entries) => Self::search(entries, user_key)
                .ok()
                .map(|at| entries[at].1.as_slice()),
            UserMap::Large(map) => map.get(user_key).map(Bytes::as_slice),
        }
    }

    /// Sets the value of `user_key`, inserting it if it is new.
    pub(crate) fn put(&mut self, user_key: &[u8], value: &[u8]) {
        match self {
            UserMap::Small(entries) => match Self::search(entries, user_key) {
                Ok(at) => {
                    let slot = &mut entries[at].1;
                    slot.clear();
                    slot.extend_from_slice(value);
                }
                Err(at) => {
                    entries.insert(at, (Bytes::from_slice(user_key), Bytes::from_slice(value)));
                    if entries.len() > SMALL {
                        *self = UserMap::Large(std::mem::take(entries).into_iter().collect());
                    }
                }
            },
            UserMap::Large(map) => match map.get_mut(user_key) {
                Some(slot) => {
                    slot.clear();
                    slot.extend_from_slice(value);
                }
                None => {
                    map.insert(Bytes::from_slice(user_key), Bytes::from_slice(value));
                }
            },
        }
    }

    /// Removes `user_key`, if present. A large map stays large: a map that once grew is likely
    /// to grow again, and moving it back and forth would cost more than it saves.
    pub(crate) fn remove(&mut self, user_key: &[u8]) {
        match self {
            UserMap::Small(entries) => {
                if let Ok(at) = Self::search(entries, user_key) {
                    entries.remove(at);
                }
            }
            UserMap::Large(map) => {
                map.remove(user_key);
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
            UserMap::Small(entries) => {
                let start = after.map_or(0, |after| {
                    entries.partition_point(|(key, _)| compare(key, after) != Ordering::Greater)
                });
                Iter::Small(entries[start..].iter())
            }
            UserMap::Large(map) => {
                let from = after.map_or(Bound::Unbounded, Bound::Excluded);
                Iter::Large(map.range::<[u8], _>((from, Bound::Unbounded)))
            }
        }
    }
}

/// The entries of a [`UserMap`], in user-key order.
pub(crate) enum Iter<'a> {
    Small(std::slice::Iter<'a, (Bytes, Bytes)>),
    Large(std::collections::btree_map::Range<'a, Bytes, Bytes>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (key, value) = match self {
            Iter::Small(entries) => entries.next().map(|(key, value)| (key, value))?,
            Iter::Large(entries) => entries.next()?,
        };
        Some((key.as_slice(), value.as_slice()))
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
    fn small_and_large_maps_order_lookup_and_iterate_as_a_btree_map() {
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
