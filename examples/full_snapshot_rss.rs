//! Peak memory of writing and restoring a large canonical full snapshot: both stream, so the
//! peak resident set stays far below the snapshot's size.
//!
//! ```sh
//! cargo run --release --example full_snapshot_rss -- [GiB, default 1] [dir, default a temporary one]
//! ```
//!
//! A RocksDB backend is filled with GiB of value state (1 KiB values), then takes a full
//! snapshot into a checkpoint directory; a new RocksDB backend restores it (the canonical file
//! read key group by key group, written into SST files and ingested); a heap backend restores
//! a tenth of its key groups. For each phase the program prints the resident set before it and
//! the peak during it (Linux: `VmHWM`, reset through `/proc/self/clear_refs`), so the figure is
//! what the phase itself added.

use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate::heap::HeapBackend;
use keyedstate::job;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{KeyGroupRange, MaxParallelism, Result, SnapshotKind, ValueStateDescriptor};
use keyedstate_testkit::model::Rng;
use std::sync::Arc;
use std::time::Instant;

/// `VmRSS` and `VmHWM` of this process, in MiB.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs `phase`, printing the resident set before it and the peak while it ran.
fn measured<T>(name: &str, phase: impl FnOnce() -> Result<T>) -> Result<T> {
    // Resets VmHWM to the current resident set.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (before, _) = memory();
    let started = Instant::now();
    let result = phase()?;
    let (_, peak) = memory();
    println!(
        "{name}: {:.1} s, resident {before} MiB before, peak {peak} MiB (+{} MiB)",
        started.elapsed().as_secs_f64(),
        peak.saturating_sub(before)
    );
    Ok(result)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let gib: f64 = args.next().map_or(1.0, |a| a.parse().expect("GiB"));
    let temp = tempfile::tempdir().expect("temporary directory");
    let dir = args.next().map_or(temp.path().to_path_buf(), Into::into);
    let max_p = MaxParallelism::new(128)?;
    let value_len = 1024usize;
    let keys = (gib * (1u64 << 30) as f64 / value_len as f64) as u64;
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.join("checkpoints"))?);
    let mut config = RocksDbConfig::new(dir.join("source"), max_p, max_p.full_range());
    config.delete_on_close = true;
    let source = RocksDbBackend::open(config)?;
    let state = source.value_state(&ValueStateDescriptor::<Vec<u8>>::new("payload"))?;
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut value = vec![0u8; value_len];
    for key in 0..keys {
        rng.fill(&mut value);
        source.set_current_key(&key)?;
        state.update(&value)?;
    }
    println!("state: {keys} keys of {value_len} bytes ({gib} GiB)");
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1)?;
    let metadata = measured("write full snapshot", || {
        job::checkpoint(
            std::slice::from_ref(&source),
            &mut coordinator,
            SnapshotKind::Full,
        )
    })?;
    source.close()?;
    let bytes: u64 = metadata.files().map(|f| f.size).sum();
    println!("snapshot: {} MiB", bytes >> 20);
    let config = RocksDbConfig::new(dir.join("restored"), max_p, max_p.full_range());
    let restored = measured("restore into RocksDB", || {
        RocksDbBackend::restore(config, &metadata, &storage)
    })?;
    restored.close()?;
    // A tenth of the key groups on the heap: the state itself is then in memory too.
    let range = KeyGroupRange::new(0, 12, max_p)?;
    let heap = measured("restore a tenth into the heap", || {
        HeapBackend::restore(max_p, range, &metadata, storage.as_ref())
    })?;
    heap.close()?;
    Ok(())
}
