//! Key groups, the unit of rescaling: Flink's assignment of keys to key groups and of key groups
//! to subtasks.

use crate::error::{Error, Result};
use crate::murmur3::murmur3_32;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest supported max parallelism (number of key groups), as in Flink.
pub const UPPER_BOUND_MAX_PARALLELISM: u32 = 32_768;

/// A validated max parallelism: the number of key groups, fixed for the life of a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct MaxParallelism(u32);

impl MaxParallelism {
    /// Accepts 1..=32768; anything else is an invalid argument.
    pub fn new(max_parallelism: u32) -> Result<Self> {
        if (1..=UPPER_BOUND_MAX_PARALLELISM).contains(&max_parallelism) {
            Ok(MaxParallelism(max_parallelism))
        } else {
            Err(Error::invalid_argument(format!(
                "max parallelism {max_parallelism} is outside 1..={UPPER_BOUND_MAX_PARALLELISM}"
            )))
        }
    }

    /// Flink's default for a job of parallelism `p`:
    /// `min(max(round_up_pow2(p + p/2), 128), 32768)`.
    pub fn default_for(parallelism: u32) -> Self {
        let wanted = u64::from(parallelism) + u64::from(parallelism / 2);
        let rounded = wanted.max(1).next_power_of_two();
        let clamped = rounded.clamp(128, u64::from(UPPER_BOUND_MAX_PARALLELISM));
        MaxParallelism(clamped as u32)
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Bytes of the big-endian key-group prefix of every RocksDB key: 1 up to 128 key groups,
    /// else 2.
    pub fn prefix_len(self) -> usize {
        if self.0 <= 128 { 1 } else { 2 }
    }

    /// The key group of a key, from its serialized bytes: `murmur3_32(bytes, 0) % max_parallelism`.
    #[inline]
    pub fn key_group_of(self, serialized_key: &[u8]) -> u16 {
        let hash = murmur3_32(serialized_key, 0);
        // A power of two (Flink's defaults are) takes a mask, not a division of 20-40 cycles.
        if self.0.is_power_of_two() {
            (hash & (self.0 - 1)) as u16
        } else {
            (hash % self.0) as u16
        }
    }

    /// The key group of `key` as a backend's `set_current_key` places it: over its `ks1`
    /// encoding. For routing a record to the subtask that owns its key before any backend
    /// sees it.
    pub fn key_group_of_key<K: serde::Serialize + ?Sized>(self, key: &K) -> Result<u16> {
        let mut bytes = Vec::new();
        crate::codec::encode(key, &mut bytes)?;
        Ok(self.key_group_of(&bytes))
    }

    /// Every key group, as one range.
    pub fn full_range(self) -> KeyGroupRange {
        KeyGroupRange {
            start: 0,
            end: (self.0 - 1) as u16,
        }
    }

    /// The key groups of subtask `index` of `parallelism`, as Flink computes them:
    /// `start = (i*maxP + p - 1) / p`, `end = ((i+1)*maxP - 1) / p`.
    pub fn range_for_subtask(self, parallelism: u32, index: u32) -> Result<KeyGroupRange> {
        self.check_parallelism(parallelism)?;
        if index >= parallelism {
            return Err(Error::invalid_argument(format!(
                "subtask index {index} is not below parallelism {parallelism}"
            )));
        }
        let (max_p, p, i) = (u64::from(self.0), u64::from(parallelism), u64::from(index));
        let start = (i * max_p).div_ceil(p);
        let end = ((i + 1) * max_p - 1) / p;
        Ok(KeyGroupRange {
            start: start as u16,
            end: end as u16,
        })
    }

    /// The subtask of `parallelism` that owns `key_group`: `kg * p / maxP`.
    pub fn subtask_of(self, key_group: u16, parallelism: u32) -> Result<u32> {
        self.check_parallelism(parallelism)?;
        if u32::from(key_group) >= self.0 {
            return Err(Error::invalid_argument(format!(
                "key group {key_group} is not below max parallelism {}",
                self.0
            )));
        }
        Ok((u64::from(key_group) * u64::from(parallelism) / u64::from(self.0)) as u32)
    }

    fn check_parallelism(self, parallelism: u32) -> Result<()> {
        if parallelism == 0 || parallelism > self.0 {
            return Err(Error::invalid_argument(format!(
                "parallelism {parallelism} is outside 1..={} (the max parallelism)",
                self.0
            )));
        }
        Ok(())
    }
}

impl TryFrom<u32> for MaxParallelism {
    type Error = Error;
    fn try_from(value: u32) -> Result<Self> {
        MaxParallelism::new(value)
    }
}

impl From<MaxParallelism> for u32 {
    fn from(value: MaxParallelism) -> u32 {
        value.0
    }
}

impl fmt::Display for MaxParallelism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An inclusive, non-empty range of key groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyGroupRange {
    start: u16,
    end: u16,
}

impl KeyGroupRange {
    /// `start..=end`, which must lie inside `max_parallelism`'s key groups.
    pub fn new(start: u16, end: u16, max_parallelism: MaxParallelism) -> Result<Self> {
        if start > end || u32::from(end) >= max_parallelism.get() {
            return Err(Error::invalid_argument(format!(
                "key-group range [{start}, {end}] is empty or outside 0..{max_parallelism}"
            )));
        }
        Ok(KeyGroupRange { start, end })
    }

    pub fn start(self) -> u16 {
        self.start
    }

    pub fn end(self) -> u16 {
        self.end
    }

    pub fn len(self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// A range is never empty; present for API completeness with `len`.
    pub fn is_empty(self) -> bool {
        false
    }

    #[inline]
    pub fn contains(self, key_group: u16) -> bool {
        (self.start..=self.end).contains(&key_group)
    }

    /// Position of `key_group` inside the range, for per-key-group arrays.
    #[inline]
    pub fn offset_of(self, key_group: u16) -> usize {
        usize::from(key_group - self.start)
    }

    pub fn iter(self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    /// The key groups both ranges hold, if any.
    pub fn intersect(self, other: KeyGroupRange) -> Option<KeyGroupRange> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start <= end).then_some(KeyGroupRange { start, end })
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}, {}]", self.start, self.end)
    }
}
