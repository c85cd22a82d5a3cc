//! State with a TTL survives checkpoint, restore and rescale: values keep their timestamps and
//! the TTL is still part of the state's registration.

mod common;

use common::directory_coordinator;
use keyedstate::job::{self, Engine};
use keyedstate::{ErrorKind, MaxParallelism, SnapshotKind, StateTtlConfig, ValueStateDescriptor};
use std::time::Duration;

fn descriptor() -> ValueStateDescriptor<u64> {
    ValueStateDescriptor::<u64>::new("session")
        .with_ttl(StateTtlConfig::new(Duration::from_secs(3600)))
}

#[test]
fn ttl_state_restores_at_another_parallelism() {
    for (engine, kind) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::RocksDb, SnapshotKind::Full),
        (Engine::Heap, SnapshotKind::Full),
    ] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let work = tempfile::tempdir().unwrap();
        let max_p = MaxParallelism::new(128).unwrap();
        let backend = job::open_subtask(engine, max_p, 1, 0, work.path()).unwrap();
        let state = backend.value_state(&descriptor()).unwrap();
        for key in 0u64..100 {
            backend.set_current_key(&key).unwrap();
            state.update(&(key * 2)).unwrap();
        }
        let metadata =
            job::checkpoint(std::slice::from_ref(&backend), &mut coordinator, kind).unwrap();
        assert!(
            metadata.states[0].ttl.is_some(),
            "the TTL is recorded with the state"
        );
        for target in [Engine::RocksDb, Engine::Heap] {
            let mut seen = 0;
            for index in 0..2 {
                let restored = job::restore_subtask(
                    target,
                    &metadata,
                    &storage,
                    2,
                    index,
                    &work.path().join("r"),
                )
                .unwrap();
                let err = restored
                    .value_state(&ValueStateDescriptor::<u64>::new("session"))
                    .err()
                    .unwrap();
                assert_eq!(
                    err.kind(),
                    ErrorKind::IncompatibleState,
                    "TTL cannot be turned off on restore"
                );
                let state = restored.value_state(&descriptor()).unwrap();
                for key in restored.keys::<u64, _>("session", &()).unwrap() {
                    restored.set_current_key(&key).unwrap();
                    assert_eq!(
                        state.get().unwrap(),
                        Some(key * 2),
                        "{engine:?} {kind:?} into {target:?}"
                    );
                    seen += 1;
                }
                restored.close().unwrap();
            }
            assert_eq!(seen, 100);
        }
    }
}
