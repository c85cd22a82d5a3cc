//! The randomized job test (`keyedstate_testkit::job_model`) on the heap backend: full snapshots,
//! restores and offline rescales at random parallelisms, against the model.

use keyedstate_core::checkpoint::{CheckpointMetadata, CheckpointStorage, MemoryStorage};
use keyedstate_core::{KeyedStateBackend, MaxParallelism, Result, SnapshotKind};
use keyedstate_heap::HeapBackend;
use keyedstate_testkit::job_model::{JobEngine, run_schedules, soak};
use std::sync::Arc;

struct Heap;

impl JobEngine for Heap {
    fn kinds(&self) -> &[SnapshotKind] {
        // The heap takes full snapshots when asked for either.
        &[SnapshotKind::Full, SnapshotKind::Incremental]
    }

    fn new_root(&self) -> Arc<dyn CheckpointStorage> {
        Arc::new(MemoryStorage::new())
    }

    fn open(
        &self,
        max_p: MaxParallelism,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend> {
        HeapBackend::open(max_p, max_p.range_for_subtask(parallelism, index)?)
    }

    fn restore(
        &self,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend> {
        let max_p = metadata.max_parallelism;
        HeapBackend::restore(
            max_p,
            max_p.range_for_subtask(parallelism, index)?,
            metadata,
            storage.as_ref(),
        )
    }
}

#[test]
fn random_job_schedules_match_the_model() {
    assert_eq!(run_schedules(&Heap, 0, 300), 0);
}

/// `cargo test -p keyedstate-heap --release --test job_model -- --ignored soak` (see
/// `job_model::soak` for its settings).
#[test]
#[ignore = "a soak: run by scripts/soak.sh"]
fn soak_random_job_schedules() {
    assert_eq!(soak(&Heap), 0);
}
