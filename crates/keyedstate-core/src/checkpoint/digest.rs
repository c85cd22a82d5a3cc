//! The logical state digest: an order-independent hash of every logical entry (state name, key
//! group, key, namespace, map user key, value bytes). Equal logical state gives an equal digest
//! whatever the backend, snapshot format or parallelism, so it checks restores and rescales.

use crate::backend::RawEntry;
use crate::key_layout::put_framed;
use std::fmt;

/// Count and wrapping sum of the entries' 128-bit hashes (XXH3-128 of the framed entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateDigest {
    pub entries: u64,
    pub sum: u128,
}

impl StateDigest {
    /// Adds one entry; `scratch` is a reusable buffer.
    pub fn add(&mut self, state: &str, entry: &RawEntry<'_>, scratch: &mut Vec<u8>) {
        scratch.clear();
        put_framed(scratch, state.as_bytes());
        scratch.extend_from_slice(&entry.parts.key_group.to_be_bytes());
        put_framed(scratch, entry.parts.key);
        put_framed(scratch, entry.parts.namespace);
        put_framed(scratch, entry.parts.user_key);
        put_framed(scratch, entry.value);
        self.entries += 1;
        self.sum = self.sum.wrapping_add(xxhash_rust::xxh3::xxh3_128(scratch));
    }

    /// Combines digests of disjoint parts (subtasks).
    pub fn merge(&mut self, other: StateDigest) {
        self.entries += other.entries;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

impl fmt::Display for StateDigest {
    /// `entries=<N> digest=<32 hex digits>`, as `keyedstate verify --digest` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "entries={} digest={:032x}", self.entries, self.sum)
    }
}
