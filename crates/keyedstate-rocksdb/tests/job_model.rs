//! The randomized job test (`keyedstate_testkit::job_model`) on the RocksDB backend: incremental
//! and full checkpoints into a directory, restores with base, clip and import, offline rescales,
//! against the model. Also with timers in memory and write-batch imports.

use keyedstate_core::checkpoint::{CheckpointMetadata, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{KeyedStateBackend, MaxParallelism, Result, SnapshotKind};
use keyedstate_rocksdb::{RescaleMethod, RocksDbBackend, RocksDbConfig, TimerStore};
use keyedstate_testkit::job_model::{JobEngine, run_schedules, soak};
use std::cell::Cell;
use std::path::PathBuf;
use std::sync::Arc;

/// Instances and checkpoint roots in one temporary directory, each under a fresh name.
struct RocksDb {
    dir: tempfile::TempDir,
    next: Cell<u64>,
    timer_store: TimerStore,
    rescale_method: RescaleMethod,
}

impl RocksDb {
    fn new(timer_store: TimerStore, rescale_method: RescaleMethod) -> Self {
        RocksDb {
            dir: tempfile::tempdir().expect("temporary directory"),
            next: Cell::new(0),
            timer_store,
            rescale_method,
        }
    }

    fn fresh(&self, what: &str) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        self.dir.path().join(format!("{what}-{n}"))
    }

    fn config(&self, max_p: MaxParallelism, parallelism: u32, index: u32) -> Result<RocksDbConfig> {
        let range = max_p.range_for_subtask(parallelism, index)?;
        let mut config = RocksDbConfig::new(self.fresh("instance"), max_p, range);
        config.timer_store = self.timer_store;
        config.rescale_method = self.rescale_method;
        Ok(config)
    }
}

impl JobEngine for RocksDb {
    fn kinds(&self) -> &[SnapshotKind] {
        &[
            SnapshotKind::Incremental,
            SnapshotKind::Incremental,
            SnapshotKind::Full,
        ]
    }

    fn new_root(&self) -> Arc<dyn CheckpointStorage> {
        Arc::new(DirectoryStorage::new(self.fresh("root")).expect("a checkpoint root"))
    }

    fn open(
        &self,
        max_p: MaxParallelism,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend> {
        RocksDbBackend::open(self.config(max_p, parallelism, index)?)
    }

    fn restore(
        &self,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend> {
        let config = self.config(metadata.max_parallelism, parallelism, index)?;
        RocksDbBackend::restore(config, metadata, storage)
    }
}

#[test]
fn random_job_schedules_match_the_model() {
    let engine = RocksDb::new(TimerStore::RocksDb, RescaleMethod::Files);
    assert_eq!(run_schedules(&engine, 0, 100), 0);
}

#[test]
fn random_job_schedules_with_heap_timers_and_moved_files_match_the_model() {
    let engine = RocksDb::new(TimerStore::Heap, RescaleMethod::Files);
    assert_eq!(run_schedules(&engine, 1_000_000, 20), 0);
}

#[test]
fn random_job_schedules_with_rewritten_entries_match_the_model() {
    let engine = RocksDb::new(TimerStore::RocksDb, RescaleMethod::Ingest);
    assert_eq!(run_schedules(&engine, 2_000_000, 20), 0);
}

#[test]
fn random_job_schedules_with_heap_timers_and_write_batches_match_the_model() {
    let engine = RocksDb::new(TimerStore::Heap, RescaleMethod::WriteBatch);
    assert_eq!(run_schedules(&engine, 500_000, 40), 0);
}

/// `cargo test -p keyedstate-rocksdb --release --test job_model -- --ignored soak` (see
/// `job_model::soak` for its settings).
#[test]
#[ignore = "a soak: run by scripts/soak.sh"]
fn soak_random_job_schedules() {
    let engine = RocksDb::new(TimerStore::RocksDb, RescaleMethod::Files);
    assert_eq!(soak(&engine), 0);
}
