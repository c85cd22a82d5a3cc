//! Runtime metrics of a backend: sampled access latency per state (as Flink's
//! `state.backend.latency-track.*`) and state size figures, taken together by
//! [`crate::KeyedStateBackend::metrics`].

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A latency histogram with power-of-two nanosecond buckets: bucket `i` counts samples below
/// 2^(i+1) ns (and at least 2^i ns, bucket 0 from 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyHistogram {
    pub count: u64,
    pub total_nanos: u64,
    pub max_nanos: u64,
    pub buckets: [u64; 32],
}

impl LatencyHistogram {
    pub fn record(&mut self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = (63 - nanos.max(1).leading_zeros() as usize).min(self.buckets.len() - 1);
        self.buckets[bucket] += 1;
        self.count += 1;
        self.total_nanos = self.total_nanos.saturating_add(nanos);
        self.max_nanos = self.max_nanos.max(nanos);
    }

    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.total_nanos.checked_div(self.count).unwrap_or(0))
    }

    /// An upper bound of the `q` quantile (0..=1): the top of the bucket holding it.
    pub fn quantile(&self, q: f64) -> Duration {
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_nanos((1u64 << (i + 1)).min(self.max_nanos.max(1)));
            }
        }
        Duration::from_nanos(self.max_nanos)
    }

    /// Adds another histogram's samples (of other subtasks).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.count += other.count;
        self.total_nanos = self.total_nanos.saturating_add(other.total_nanos);
        self.max_nanos = self.max_nanos.max(other.max_nanos);
        for (a, b) in self.buckets.iter_mut().zip(other.buckets) {
            *a += b;
        }
    }
}

/// Samples every `interval`-th access of one state.
#[derive(Debug)]
pub(crate) struct LatencySampler {
    interval: u64,
    accesses: AtomicU64,
    histogram: Mutex<LatencyHistogram>,
}

impl LatencySampler {
    pub(crate) fn new(interval: u64) -> Self {
        LatencySampler {
            interval: interval.max(1),
            accesses: AtomicU64::new(0),
            histogram: Mutex::default(),
        }
    }

    /// Whether this access is sampled.
    pub(crate) fn tick(&self) -> bool {
        self.accesses
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(self.interval)
    }

    pub(crate) fn record(&self, elapsed: Duration) {
        self.histogram
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(elapsed);
    }

    pub(crate) fn histogram(&self) -> LatencyHistogram {
        self.histogram
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Size figures an engine reports; `None` where it has no such thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineMetrics {
    /// Estimated entries per state, indexed by state id (exact on the heap; RocksDB's
    /// `rocksdb.estimate-num-keys`).
    pub estimated_entries: Vec<u64>,
    /// Bytes of live SST files (RocksDB).
    pub sst_bytes: Option<u64>,
    /// Bytes of memtables (RocksDB).
    pub memtable_bytes: Option<u64>,
    /// Bytes in use in the block cache shared with the process (RocksDB).
    pub block_cache_bytes: Option<u64>,
}

/// One state's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMetrics {
    pub name: String,
    pub estimated_entries: u64,
    /// Sampled access latency, when latency tracking is on.
    pub latency: Option<LatencyHistogram>,
}

/// Everything [`crate::KeyedStateBackend::metrics`] reports.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendMetrics {
    pub engine: &'static str,
    pub states: Vec<StateMetrics>,
    pub sst_bytes: Option<u64>,
    pub memtable_bytes: Option<u64>,
    pub block_cache_bytes: Option<u64>,
}
