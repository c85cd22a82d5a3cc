//! A job's subtasks seen together: open or restore the backend of each subtask of either engine;
//! the job-level checkpoint and digest of `keyedstate_core::job`, re-exported. Used by the
//! `keyedstate` tool and the tests.

use keyedstate_core::checkpoint::{CheckpointMetadata, CheckpointStorage};
pub use keyedstate_core::job::{
    SubtaskSnapshot, checkpoint, checkpoint_with_local_recovery, checkpoint_with_operator_state,
    complete, digest, notify,
};
use keyedstate_core::{KeyedStateBackend, MaxParallelism, Result};
use keyedstate_heap::HeapBackend;
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use std::path::Path;
use std::sync::Arc;

/// Which engine a subtask runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Heap,
    RocksDb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Heap => "heap",
            Engine::RocksDb => "rocksdb",
        }
    }
}

fn rocksdb_config(
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<RocksDbConfig> {
    let range = max_p.range_for_subtask(parallelism, index)?;
    Ok(RocksDbConfig::new(
        work.join(format!("subtask-{index}")),
        max_p,
        range,
    ))
}

/// A new, empty backend for subtask `index` of `parallelism`; RocksDB instances go below `work`.
pub fn open_subtask(
    engine: Engine,
    max_p: MaxParallelism,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<KeyedStateBackend> {
    match engine {
        Engine::Heap => HeapBackend::open(max_p, max_p.range_for_subtask(parallelism, index)?),
        Engine::RocksDb => RocksDbBackend::open(rocksdb_config(max_p, parallelism, index, work)?),
    }
}

/// The backend of subtask `index` of `parallelism`, restored from `metadata` (taken at this or
/// any other parallelism with the same max parallelism).
pub fn restore_subtask(
    engine: Engine,
    metadata: &CheckpointMetadata,
    storage: &Arc<dyn CheckpointStorage>,
    parallelism: u32,
    index: u32,
    work: &Path,
) -> Result<KeyedStateBackend> {
    let max_p = metadata.max_parallelism;
    match engine {
        Engine::Heap => {
            // RocksDB incremental snapshots reach the heap through a temporary RocksDB instance.
            let range = max_p.range_for_subtask(parallelism, index)?;
            let mut heap = HeapBackend::new(max_p, range)?;
            let scratch = work.join(format!("subtask-{index}-import"));
            let restored = keyedstate_rocksdb::restore_into(&mut heap, metadata, storage, &scratch);
            let _ = std::fs::remove_dir_all(&scratch);
            restored?;
            Ok(KeyedStateBackend::new(Box::new(heap)))
        }
        Engine::RocksDb => RocksDbBackend::restore(
            rocksdb_config(max_p, parallelism, index, work)?,
            metadata,
            storage,
        ),
    }
}
