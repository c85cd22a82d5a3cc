//! State time-to-live, as Flink's `StateTtlConfig`, and the injected clock it reads.
//!
//! A value of a state with TTL is stored as `[last access: u64 big-endian milliseconds][value]`;
//! each list element and each map value carries its own timestamp (see `docs/formats.md`). The
//! layout is fixed so that engines (the heap's incremental cleanup, RocksDB's compaction filter)
//! can judge expiry without decoding values.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as state TTL and processing-time timers see them.
pub trait Clock: Send + Sync + 'static {
    fn now_millis(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }
}

/// A clock set by hand, for tests and simulations. Reading it takes no lock.
#[derive(Debug, Default)]
pub struct ManualClock {
    millis: AtomicU64,
}

impl ManualClock {
    pub fn new(millis: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            millis: AtomicU64::new(millis),
        })
    }

    pub fn set(&self, millis: u64) {
        self.millis.store(millis, Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        self.millis
            .fetch_add(by.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        self.millis.load(Ordering::Relaxed)
    }
}

/// The clock used when none is given.
pub fn system_clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// When the last-access timestamp is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlUpdateType {
    /// TTL is off: the state is registered as one without a TTL (Flink's `Disabled`).
    Disabled,
    /// On creation and on every write.
    #[default]
    OnCreateAndWrite,
    /// Also on every read.
    OnReadAndWrite,
}

/// Whether an expired value that is still stored may be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlVisibility {
    /// Never: an expired value reads as absent (and is removed on that read).
    #[default]
    NeverReturnExpired,
    /// Yes, until a cleanup removes it.
    ReturnExpiredIfNotCleanedUp,
}

/// The TTL of one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTtlConfig {
    pub ttl: Duration,
    pub update_type: TtlUpdateType,
    pub visibility: TtlVisibility,
    /// Entries the heap backend checks for expiry on every access of the state (0: none).
    pub incremental_cleanup_size: u32,
}

impl StateTtlConfig {
    /// A TTL with Flink's defaults: renewed on create and write, expired values never returned,
    /// 5 entries checked per heap access. Expired entries are always left out of full snapshots
    /// and, on RocksDB, removed by compaction.
    pub fn new(ttl: Duration) -> Self {
        StateTtlConfig {
            ttl,
            update_type: TtlUpdateType::OnCreateAndWrite,
            visibility: TtlVisibility::NeverReturnExpired,
            incremental_cleanup_size: 5,
        }
    }

    pub fn update_type(mut self, update_type: TtlUpdateType) -> Self {
        self.update_type = update_type;
        self
    }

    pub fn visibility(mut self, visibility: TtlVisibility) -> Self {
        self.visibility = visibility;
        self
    }

    pub fn incremental_cleanup(mut self, entries_per_access: u32) -> Self {
        self.incremental_cleanup_size = entries_per_access;
        self
    }

    pub fn ttl_millis(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// What the backend records and engines need.
    pub fn meta(&self) -> TtlMeta {
        TtlMeta {
            millis: self.ttl_millis(),
            incremental_cleanup: self.incremental_cleanup_size,
        }
    }
}

/// The part of a state's TTL that is recorded with the state and that engines use for cleanup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TtlMeta {
    pub millis: u64,
    /// Entries the heap checks per access.
    pub incremental_cleanup: u32,
}

/// Bytes of the timestamp in front of a TTL'd value.
pub const TIMESTAMP_LEN: usize = 8;

/// Appends the timestamp that goes in front of a value.
pub fn put_timestamp(out: &mut Vec<u8>, millis: u64) {
    out.extend_from_slice(&millis.to_be_bytes());
}

/// Splits a TTL'd value into its last-access timestamp and the value; `None` when it is too
/// short to hold a timestamp (corrupt).
pub fn split_timestamp(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let (ts, value) = bytes.split_first_chunk::<TIMESTAMP_LEN>()?;
    Some((u64::from_be_bytes(*ts), value))
}

/// Whether a value last accessed at `last_access` has expired at `now`: at exactly
/// `last_access + ttl` it has (as in Flink).
pub fn is_expired(last_access: u64, ttl_millis: u64, now: u64) -> bool {
    last_access.saturating_add(ttl_millis) <= now
}

/// What is left of a stored value of a state with TTL at some time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unexpired {
    /// Nothing has expired.
    All,
    /// Some list elements expired; the others are in the `kept` buffer.
    Part,
    /// Everything has expired.
    Nothing,
}

/// Judges stored `value` (a timestamped value, or for a list a sequence of framed timestamped
/// elements) at `now`; for a partly expired list, writes the unexpired elements into `kept`.
pub fn unexpired(
    value: &[u8],
    is_list: bool,
    ttl_millis: u64,
    now: u64,
    kept: &mut Vec<u8>,
) -> crate::Result<Unexpired> {
    let corrupt =
        || crate::Error::corruption("a value of a state with TTL is shorter than its timestamp");
    if !is_list {
        let (last_access, _) = split_timestamp(value).ok_or_else(corrupt)?;
        return Ok(if is_expired(last_access, ttl_millis, now) {
            Unexpired::Nothing
        } else {
            Unexpired::All
        });
    }
    kept.clear();
    let mut expired = false;
    for element in crate::key_layout::list_elements(value) {
        let element = element?;
        let (last_access, _) = split_timestamp(element).ok_or_else(corrupt)?;
        if is_expired(last_access, ttl_millis, now) {
            expired = true;
        } else {
            crate::key_layout::put_framed(kept, element);
        }
    }
    Ok(match (expired, kept.is_empty()) {
        (false, _) => Unexpired::All,
        (true, true) => Unexpired::Nothing,
        (true, false) => Unexpired::Part,
    })
}
