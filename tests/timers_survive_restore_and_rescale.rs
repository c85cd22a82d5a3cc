//! Timers are checkpointed, restored and rescaled with their key groups: after a restore at
//! another parallelism every timer fires exactly once, in the subtask owning its key.

mod common;

use common::directory_coordinator;
use keyedstate::job::{self, Engine};
use keyedstate::{MaxParallelism, SnapshotKind, TimeDomain};

#[test]
fn timers_fire_once_after_restore_at_another_parallelism() {
    for (engine, kind) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::RocksDb, SnapshotKind::Full),
        (Engine::Heap, SnapshotKind::Full),
    ] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let work = tempfile::tempdir().unwrap();
        let max_p = MaxParallelism::new(128).unwrap();
        let backends: Vec<_> = (0..2)
            .map(|i| job::open_subtask(engine, max_p, 2, i, work.path()).unwrap())
            .collect();
        let mut expected = Vec::new();
        for backend in &backends {
            let timers = backend.timer_service().unwrap();
            for key in 0u64..300 {
                if backend.set_current_key(&key).is_err() {
                    continue; // another subtask's key
                }
                timers
                    .register(TimeDomain::EventTime, &(), (key * 7 % 100) as i64)
                    .unwrap();
                timers
                    .register(TimeDomain::ProcessingTime, &"p", key as i64)
                    .unwrap();
                expected.push(key);
            }
        }
        let metadata = job::checkpoint(&backends, &mut coordinator, kind).unwrap();
        for target in [Engine::RocksDb, Engine::Heap] {
            let mut fired = Vec::new();
            for index in 0..3 {
                let restored = job::restore_subtask(
                    target,
                    &metadata,
                    &storage,
                    3,
                    index,
                    &work.path().join("r"),
                )
                .unwrap();
                let timers = restored.timer_service().unwrap();
                let mut last = i64::MIN;
                let before = fired.len();
                timers
                    .advance(TimeDomain::EventTime, i64::MAX, |timer| {
                        assert!(timer.timestamp >= last, "timestamp order after restore");
                        last = timer.timestamp;
                        let key: u64 = timer.key_as()?;
                        assert_eq!(timer.timestamp, (key * 7 % 100) as i64);
                        fired.push(key);
                        Ok(())
                    })
                    .unwrap();
                // One processing-time timer per key too, in the same subtask as its event-time one.
                let processing = timers
                    .advance(TimeDomain::ProcessingTime, i64::MAX, |_| Ok(()))
                    .unwrap();
                assert_eq!(processing, fired.len() - before);
                restored.close().unwrap();
            }
            fired.sort();
            let mut all = expected.clone();
            all.sort();
            assert_eq!(
                fired, all,
                "{engine:?} {kind:?} into {target:?}: each timer once"
            );
        }
    }
}
