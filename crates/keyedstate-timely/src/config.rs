//! What a checkpointed timely job is configured with.

use keyedstate::checkpoint::CheckpointStorage;
use keyedstate::job::Engine;
use keyedstate::{MaxParallelism, SnapshotKind};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// A checkpoint at every epoch that is a multiple of this (epoch 0 never).
    pub checkpoint_every: u64,
    /// How many completed checkpoints the root keeps.
    pub retained: usize,
    pub kind: SnapshotKind,
}

impl JobConfig {
    /// A job on `engine` checkpointing to `storage` every `checkpoint_every` epochs, with 128 key
    /// groups, 2 retained checkpoints and incremental snapshots.
    pub fn new(
        storage: Arc<dyn CheckpointStorage>,
        work_dir: impl Into<PathBuf>,
        engine: Engine,
        checkpoint_every: u64,
    ) -> Self {
        JobConfig {
            storage,
            work_dir: work_dir.into(),
            engine,
            max_parallelism: MaxParallelism::default_for(1),
            checkpoint_every: checkpoint_every.max(1),
            retained: 2,
            kind: SnapshotKind::Incremental,
        }
    }
}
