//! Backends whose engine type is known at compile time (`HeapBackend::open_typed`) go through
//! the job layer like any other: a job-level checkpoint of two typed subtasks restores, at
//! another parallelism, to the same state.

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{MaxParallelism, SnapshotKind, ValueStateDescriptor, job};
use keyedstate_heap::HeapBackend;
use std::sync::Arc;

#[test]
fn typed_subtasks_checkpoint_and_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path()).expect("checkpoint directory"));
    let max_p = MaxParallelism::new(16).expect("max parallelism");
    let backends: Vec<_> = (0..2)
        .map(|i| {
            let range = max_p.range_for_subtask(2, i).expect("range");
            HeapBackend::open_typed(max_p, range).expect("heap backend opens")
        })
        .collect();
    for backend in &backends {
        let value = backend
            .value_state(&ValueStateDescriptor::<u64>::new("value"))
            .expect("value state");
        for key in 0..1_000u64 {
            // Each subtask holds only its key groups' keys.
            let group = max_p.key_group_of_key(&key).expect("key group");
            if backend.key_group_range().contains(group) {
                backend.set_current_key(&key).expect("key");
                value.update(&(key * 3)).expect("update");
            }
        }
    }
    let written = job::digest(&backends).expect("digest");
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).expect("coordinator");
    let metadata =
        job::checkpoint(&backends, &mut coordinator, SnapshotKind::Full).expect("checkpoint");

    let restored = HeapBackend::restore(max_p, max_p.full_range(), &metadata, storage.as_ref())
        .expect("restore");
    assert_eq!(
        job::digest(std::slice::from_ref(&restored)).expect("digest"),
        written
    );
    let value = restored
        .value_state(&ValueStateDescriptor::<u64>::new("value"))
        .expect("value state");
    restored.set_current_key(&777u64).expect("key");
    assert_eq!(value.get().expect("get"), Some(2_331));
}
