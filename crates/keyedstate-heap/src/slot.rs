//! [`Slot`]: one entry of a plain table (value, list, reducing and aggregating state), its key
//! (framed key and namespace) and its value together, in 24 bytes.
//!
//! A lookup in a big table costs its cache misses more than its instructions: the slot (the
//! table is an array of slots, see [`crate::probe`]), then whatever the slot points to. So key
//! and value of up to [`INLINE`] bytes in all sit in the slot itself: a `u64` key in the void
//! namespace is 10 bytes (a length byte, 8 bytes, the namespace's empty frame) and a `u64`
//! value 8, so value state of `u64`s is read with no pointer to follow. (Slots were 16 bytes, inline up to 14,
//! until fixed-width keys made that 18: every such entry spilled, a second dependent miss per
//! access.) Larger entries (lists, strings) spill into one heap allocation that holds key and
//! value together, inline up to [`SPILLED_INLINE`] bytes.

use crate::table::{same_key, two_words};
use smallvec::SmallVec;

/// Bytes of key and value together held in the slot itself.
const INLINE: usize = 21;

/// Bytes of key and value together held in a spilled entry's own allocation (64 bytes in all)
/// before they move to a separate buffer.
const SPILLED_INLINE: usize = 40;

#[derive(Clone)]
pub(crate) enum Slot {
    /// `data[..key_len]` is the key, `data[key_len..len]` the value.
    Inline {
        key_len: u8,
        len: u8,
        data: [u8; INLINE],
    },
    /// The key and value in an allocation of their own, and the key's first bytes here too,
    /// so that a probe of the table tells keys apart without following the pointer (see
    /// [`Slot::has_key`]).
    Spilled {
        /// The key's length if it is at most [`HEAD`] bytes (then `head` holds all of it),
        /// else [`LONG`].
        short_len: u8,
        head: [u8; HEAD],
        spilled: Box<Spilled>,
    },
}

/// How many more appends of the size that spilled an inline slot its spilled entry has room
/// for (see [`Slot::respill`]).
const HEAD_START: usize = 8;

/// Bytes of a spilled entry's key that its slot holds as well: what is left of 24 bytes
/// beside the discriminant, the length and the pointer.
const HEAD: usize = 14;

/// `short_len` of a key longer than [`HEAD`].
const LONG: u8 = u8::MAX;

#[derive(Clone)]
pub(crate) struct Spilled {
    key_len: u32,
    /// The key, then the value.
    bytes: SmallVec<[u8; SPILLED_INLINE]>,
}

impl Spilled {
    fn key(&self) -> &[u8] {
        &self.bytes[..self.key_len as usize]
    }
}

// Three slots and a bit to a cache line: a `u64` key and value inline, in a slot half again
// as large as a `HashMap<u64, u64>`'s.
const _: () = assert!(std::mem::size_of::<Slot>() == 24);
// And an empty entry of the table ([`crate::probe`]) costs nothing more.
const _: () = assert!(std::mem::size_of::<Option<Slot>>() == 24);

impl Slot {
    /// An entry of `key` with `value`.
    pub(crate) fn new(key: &[u8], value: &[u8]) -> Slot {
        let len = key.len() + value.len();
        if len <= INLINE {
            let mut data = [0; INLINE];
            data[..key.len()].copy_from_slice(key);
            data[key.len()..len].copy_from_slice(value);
            return Slot::Inline {
                key_len: key.len() as u8,
                len: len as u8,
                data,
            };
        }
        Slot::spilled(key, value, len)
    }

    /// A spilled entry of `key` with `value`, with room for `capacity` bytes of both.
    fn spilled(key: &[u8], value: &[u8], capacity: usize) -> Slot {
        let mut bytes = SmallVec::with_capacity(capacity);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        let mut head = [0; HEAD];
        let n = key.len().min(HEAD);
        head[..n].copy_from_slice(&key[..n]);
        Slot::Spilled {
            short_len: if key.len() <= HEAD { n as u8 } else { LONG },
            head,
            spilled: Box::new(Spilled {
                key_len: u32::try_from(key.len()).expect("an entry key is shorter than 4 GiB"),
                bytes,
            }),
        }
    }

    /// Whether this is the entry of `key`: compared in the slot itself when the key is
    /// inline or at most [`HEAD`] bytes, so that passing other entries costs no cache miss.
    /// Always inlined into the probe loop, whatever else the caller inlines (a call per slot
    /// probed costs a fifth of a `valueGet`'s instructions); long keys are compared out of line.
    #[inline(always)]
    pub(crate) fn has_key(&self, key: &[u8]) -> bool {
        match self {
            Slot::Inline { key_len, data, .. } => same_key(&data[..usize::from(*key_len)], key),
            Slot::Spilled {
                short_len: LONG, ..
            } => self.has_long_key(key),
            Slot::Spilled {
                short_len, head, ..
            } => same_key(&head[..usize::from(*short_len)], key),
        }
    }

    /// [`Self::has_key`] of a spilled entry whose key is longer than [`HEAD`].
    fn has_long_key(&self, key: &[u8]) -> bool {
        match self {
            Slot::Spilled { head, spilled, .. } => {
                key.len() > HEAD && key[..HEAD] == head[..] && spilled.key() == key
            }
            Slot::Inline { .. } => false,
        }
    }

    #[inline]
    fn key_len(&self) -> usize {
        match self {
            Slot::Inline { key_len, .. } => usize::from(*key_len),
            Slot::Spilled { spilled, .. } => spilled.key_len as usize,
        }
    }

    #[inline]
    fn bytes(&self) -> &[u8] {
        match self {
            Slot::Inline { len, data, .. } => &data[..usize::from(*len)],
            Slot::Spilled { spilled, .. } => &spilled.bytes,
        }
    }

    /// The framed key and namespace.
    #[inline]
    pub(crate) fn key(&self) -> &[u8] {
        &self.bytes()[..self.key_len()]
    }

    #[inline]
    pub(crate) fn value(&self) -> &[u8] {
        &self.bytes()[self.key_len()..]
    }

    /// Replaces the value: in place when it fits (inlined: the common update of a small
    /// entry), else by [`Self::replace_value`].
    #[inline]
    pub(crate) fn set_value(&mut self, value: &[u8]) {
        if let Slot::Inline { key_len, len, data } = self {
            let start = usize::from(*key_len);
            if let Some(to) = data.get_mut(start..start + value.len()) {
                copy_short(to, value);
                *len = (start + value.len()) as u8;
                return;
            }
        }
        self.replace_value(value);
    }

    /// [`Self::set_value`] of a value that does not fit where the old one is.
    fn replace_value(&mut self, value: &[u8]) {
        let key_len = self.key_len();
        match self {
            Slot::Spilled { spilled, .. } => {
                spilled.bytes.truncate(key_len);
                spilled.bytes.extend_from_slice(value);
            }
            Slot::Inline { .. } => *self = Slot::new(self.key(), value),
        }
    }

    /// Appends `more` to the value (list frames): inlined when it fits where the value ends
    /// (the slot's own bytes, or a spilled entry's buffer), else by [`Self::respill`].
    #[inline]
    pub(crate) fn append_value(&mut self, more: &[u8]) {
        match self {
            Slot::Spilled { spilled, .. } => spilled.bytes.extend_from_slice(more),
            Slot::Inline { len, data, .. } => {
                let end = usize::from(*len);
                match data.get_mut(end..end + more.len()) {
                    Some(to) => {
                        copy_short(to, more);
                        *len += more.len() as u8;
                    }
                    None => self.respill(more),
                }
            }
        }
    }

    /// [`Self::append_value`] of an inline slot whose bytes outgrow it: spilled, with room
    /// for [`HEAD_START`] more appends of the same size. A list that outgrows its slot is
    /// likely to keep growing, and growing a spilled entry reallocates it (glibc's `realloc`:
    /// about 500 instructions and a miss or two), so it starts with room, as Java's
    /// `ArrayList` (Flink's heap list state) starts with ten elements.
    fn respill(&mut self, more: &[u8]) {
        let value = [self.value(), more].concat();
        let key = self.key();
        let capacity = key.len() + value.len() + HEAD_START * more.len();
        *self = Slot::spilled(key, &value, capacity);
    }
}

/// Copies `from` into `to` (of equal length): values of 8 to 16 bytes (a `u64`) as their
/// [`two_words`] instead of by a call to `memcpy`.
#[inline(always)]
fn copy_short(to: &mut [u8], from: &[u8]) {
    let n = from.len();
    match two_words(from) {
        Some((head, tail)) if to.len() == n => {
            to[..8].copy_from_slice(&head.to_ne_bytes());
            to[n - 8..].copy_from_slice(&tail.to_ne_bytes());
        }
        _ => to.copy_from_slice(from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(slot: &Slot, key: &[u8], value: &[u8]) {
        assert_eq!(slot.key(), key);
        assert_eq!(slot.value(), value);
    }

    #[test]
    fn small_entries_stay_inline_and_large_ones_spill() {
        let slot = Slot::new(b"key", b"value");
        assert!(matches!(slot, Slot::Inline { .. }));
        check(&slot, b"key", b"value");
        let slot = Slot::new(b"key", &[7; 19]);
        assert!(matches!(slot, Slot::Spilled { .. }));
        check(&slot, b"key", &[7; 19]);
        let slot = Slot::new(&[1; 21], b"");
        assert!(matches!(slot, Slot::Inline { .. }));
        check(&slot, &[1; 21], b"");
        // A `u64` key in the void namespace and a `u64` value: the benchmark's entries.
        let slot = Slot::new(&[8; 10], &[9; 8]);
        assert!(matches!(slot, Slot::Inline { .. }));
        check(&slot, &[8; 10], &[9; 8]);
    }

    #[test]
    fn has_key_tells_keys_apart_inline_and_spilled_short_and_long() {
        for key_len in [0, 1, 10, HEAD - 1, HEAD, HEAD + 1, 40] {
            let key: Vec<u8> = (0..key_len as u8).map(|i| i.wrapping_mul(31)).collect();
            for value_len in [0, 30] {
                let slot = Slot::new(&key, &vec![7; value_len]);
                check(&slot, &key, &vec![7; value_len]);
                assert!(slot.has_key(&key), "key of {key_len}, value of {value_len}");
                let mut shorter = key.clone();
                shorter.pop();
                let mut longer = key.clone();
                longer.push(0);
                assert!(!slot.has_key(&longer), "key of {key_len}");
                assert!(
                    key.is_empty() || !slot.has_key(&shorter),
                    "key of {key_len}"
                );
                for flip in 0..key_len {
                    let mut other = key.clone();
                    other[flip] ^= 1;
                    assert!(!slot.has_key(&other), "key of {key_len}, byte {flip}");
                }
            }
        }
    }

    #[test]
    fn set_value_moves_between_inline_and_spilled() {
        let mut slot = Slot::new(b"k", b"a");
        slot.set_value(&[9; 40]);
        check(&slot, b"k", &[9; 40]);
        slot.set_value(&[8; 100]);
        check(&slot, b"k", &[8; 100]);
        slot.set_value(b"b");
        check(&slot, b"k", b"b");
        let mut slot = Slot::new(b"k", b"abc");
        slot.set_value(b"");
        check(&slot, b"k", b"");
    }

    #[test]
    fn set_value_keeps_every_byte_of_values_of_every_length() {
        let mut slot = Slot::new(b"key", b"old");
        for n in (0..=30).chain((0..=30).rev()) {
            let value: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
            slot.set_value(&value);
            check(&slot, b"key", &value);
        }
    }

    #[test]
    fn appends_keep_every_byte_across_the_inline_limit() {
        // Short keys, a key of exactly HEAD bytes, long keys.
        for key_len in [3, HEAD, HEAD + 1, 40] {
            let key: Vec<u8> = (0..key_len as u8).collect();
            let mut slot = Slot::new(&key, b"");
            let mut expected = Vec::new();
            for i in 0..50u8 {
                slot.append_value(&[i, i]);
                expected.extend_from_slice(&[i, i]);
                check(&slot, &key, &expected);
                assert!(slot.has_key(&key));
            }
            // And a value set over the appended ones.
            slot.set_value(b"v");
            check(&slot, &key, b"v");
        }
    }

    #[test]
    fn a_list_that_spills_has_room_for_more_appends() {
        // The benchmark's entry: a u64 key in the void namespace, u64 elements of 9 bytes.
        let mut slot = Slot::new(&[8; 10], &[1; 9]);
        assert!(
            matches!(slot, Slot::Inline { .. }),
            "one element fits inline"
        );
        slot.append_value(&[2; 9]);
        let Slot::Spilled { spilled, .. } = &slot else {
            panic!("two elements spill");
        };
        assert_eq!(spilled.bytes.capacity(), 10 + 18 + HEAD_START * 9);
        let buffer = spilled.bytes.as_ptr();
        for i in 0..HEAD_START as u8 {
            slot.append_value(&[i; 9]);
        }
        let Slot::Spilled { spilled, .. } = &slot else {
            unreachable!()
        };
        assert_eq!(spilled.bytes.as_ptr(), buffer, "no reallocation");
    }
}
