//! What a checkpointed timely job is configured with.

use keyedstate::checkpoint::CheckpointStorage;
use keyedstate::job::Engine;
use keyedstate::{MaxParallelism, SnapshotKind};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// At which epochs the job checkpoints. Worker 0 decides, as its source ends each epoch, and
/// tells every worker (see docs/timely.md), so both kinds hold the same on every worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointSchedule {
    /// At every epoch that is a multiple of this (epoch 0 never).
    EveryEpochs(u64),
    /// At the first epoch to end at least this long after the last checkpoint's epoch ended
    /// (or after the job started), as Flink's `execution.checkpointing.interval`.
    Interval(Duration),
}

/// The job's checkpointing, the same on every worker.
#[derive(Clone)]
pub struct JobConfig {
    /// The checkpoint root every worker reaches: a directory on shared storage (NFS) or an
    /// object store (`keyedstate_object_store::ObjectStoreStorage`).
    pub storage: Arc<dyn CheckpointStorage>,
    /// Where this process keeps its workers' RocksDB instances (`worker-<i>/`), local disk.
    pub work_dir: PathBuf,
    pub engine: Engine,
    /// The number of key groups: the most workers the job can ever run at.
    pub max_parallelism: MaxParallelism,
    pub schedule: CheckpointSchedule,
    /// How many completed checkpoints the root keeps.
    pub retained: usize,
    pub kind: SnapshotKind,
}

impl JobConfig {
    /// A job on `engine` checkpointing to `storage` on `schedule`, with 128 key groups, 2
    /// retained checkpoints and incremental snapshots.
    pub fn new(
        storage: Arc<dyn CheckpointStorage>,
        work_dir: impl Into<PathBuf>,
        engine: Engine,
        schedule: CheckpointSchedule,
    ) -> Self {
        JobConfig {
            storage,
            work_dir: work_dir.into(),
            engine,
            max_parallelism: MaxParallelism::default_for(1),
            schedule,
            retained: 2,
            kind: SnapshotKind::Incremental,
        }
    }
}
