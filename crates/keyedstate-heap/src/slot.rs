//! [`Slot`]: one entry of a plain table (value, list, reducing and aggregating state), its key
//! (framed key and namespace) and its value together, in 16 bytes.
//!
//! A lookup in a big table costs its cache misses more than its instructions: the hash table's
//! control bytes, then the slot. So a slot is as small as a `HashMap<u64, u64>`'s, 16 bytes,
//! and never straddles two cache lines. Key and value of up to 14 bytes in all sit in the slot
//! itself: a `u64` key below 2^32 in the void namespace is 7 bytes, a `u64` value at most 9.
//! Larger entries (lists, strings) spill into one heap allocation that holds key and value
//! together, inline up to [`SPILLED_INLINE`] bytes.

use smallvec::SmallVec;

/// Bytes of key and value together held in the slot itself.
const INLINE: usize = 14;

/// Bytes of key and value together held in a spilled entry's own allocation (64 bytes in all)
/// before they move to a separate buffer.
const SPILLED_INLINE: usize = 40;

#[derive(Clone)]
pub(crate) enum Slot {
    /// `data[..key_len]` is the key, `data[key_len..len]` the value; `lens` packs `key_len`
    /// (high nibble) and `len` (low nibble), both at most 14.
    Inline {
        lens: u8,
        data: [u8; INLINE],
    },
    Spilled(Box<Spilled>),
}

#[derive(Clone)]
pub(crate) struct Spilled {
    key_len: u32,
    /// The key, then the value.
    bytes: SmallVec<[u8; SPILLED_INLINE]>,
}

// The whole point of the type: a slot as small as a `HashMap<u64, u64>`'s.
const _: () = assert!(std::mem::size_of::<Slot>() == 16);

impl Slot {
    /// An entry of `key` with `value`.
    pub(crate) fn new(key: &[u8], value: &[u8]) -> Slot {
        let len = key.len() + value.len();
        if len <= INLINE {
            let mut data = [0; INLINE];
            data[..key.len()].copy_from_slice(key);
            data[key.len()..len].copy_from_slice(value);
            // Both lengths are at most 14, so they fit a nibble each.
            let lens = ((key.len() as u8) << 4) | len as u8;
            return Slot::Inline { lens, data };
        }
        let mut bytes = SmallVec::with_capacity(len);
        bytes.extend_from_slice(key);
        bytes.extend_from_slice(value);
        Slot::Spilled(Box::new(Spilled {
            key_len: u32::try_from(key.len()).expect("an entry key is shorter than 4 GiB"),
            bytes,
        }))
    }

    fn key_len(&self) -> usize {
        match self {
            Slot::Inline { lens, .. } => usize::from(lens >> 4),
            Slot::Spilled(spilled) => spilled.key_len as usize,
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Slot::Inline { lens, data } => &data[..usize::from(lens & 0x0f)],
            Slot::Spilled(spilled) => &spilled.bytes,
        }
    }

    /// The framed key and namespace.
    pub(crate) fn key(&self) -> &[u8] {
        &self.bytes()[..self.key_len()]
    }

    pub(crate) fn value(&self) -> &[u8] {
        &self.bytes()[self.key_len()..]
    }

    /// Replaces the value.
    pub(crate) fn set_value(&mut self, value: &[u8]) {
        let key_len = self.key_len();
        match self {
            Slot::Inline { lens, data } if key_len + value.len() <= INLINE => {
                data[key_len..key_len + value.len()].copy_from_slice(value);
                *lens = ((key_len as u8) << 4) | (key_len + value.len()) as u8;
            }
            Slot::Spilled(spilled) => {
                spilled.bytes.truncate(key_len);
                spilled.bytes.extend_from_slice(value);
            }
            Slot::Inline { .. } => *self = Slot::new(self.key(), value),
        }
    }

    /// Appends `more` to the value (list frames).
    pub(crate) fn append_value(&mut self, more: &[u8]) {
        match self {
            Slot::Spilled(spilled) => spilled.bytes.extend_from_slice(more),
            Slot::Inline { lens, data } => {
                let len = usize::from(*lens & 0x0f);
                if len + more.len() <= INLINE {
                    data[len..len + more.len()].copy_from_slice(more);
                    *lens += more.len() as u8;
                } else {
                    let value = [self.value(), more].concat();
                    *self = Slot::new(self.key(), &value);
                }
            }
        }
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
        let slot = Slot::new(b"key", &[7; 12]);
        assert!(matches!(slot, Slot::Spilled(_)));
        check(&slot, b"key", &[7; 12]);
        let slot = Slot::new(&[1; 14], b"");
        assert!(matches!(slot, Slot::Inline { .. }));
        check(&slot, &[1; 14], b"");
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
    fn appends_keep_every_byte_across_the_inline_limit() {
        let mut slot = Slot::new(b"key", b"");
        let mut expected = Vec::new();
        for i in 0..50u8 {
            slot.append_value(&[i, i]);
            expected.extend_from_slice(&[i, i]);
            check(&slot, b"key", &expected);
        }
    }
}
