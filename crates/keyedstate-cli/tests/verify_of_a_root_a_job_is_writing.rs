//! `keyedstate verify ROOT` while a job keeps checkpointing into ROOT with one checkpoint
//! retained: when the checkpoint being read is subsumed, verify moves on to the latest one
//! instead of failing on a file that retention removed.

mod common;

use common::{keyedstate, text};
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate::job::{self, Engine};
use keyedstate::{MaxParallelism, SnapshotKind, ValueStateDescriptor};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn verify_of_a_root_moves_on_when_its_checkpoint_is_subsumed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("checkpoints");
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root).unwrap());
    let max_p = MaxParallelism::new(128).unwrap();
    let work = dir.path().join("work");
    let stop = AtomicBool::new(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let failures = std::thread::scope(|scope| {
        // The job, on its own thread (a backend belongs to the thread that opens it).
        scope.spawn(|| {
            let backends: Vec<_> = (0..2)
                .map(|i| job::open_subtask(Engine::RocksDb, max_p, 2, i, &work).unwrap())
                .collect();
            let mut coordinator = CheckpointCoordinator::open(storage, 1).unwrap();
            let write = |round: u64| {
                for key in 0..2_000u64 {
                    let backend = backends
                        .iter()
                        .find(|b| b.set_current_key(&key).is_ok())
                        .unwrap();
                    let value = backend
                        .value_state(&ValueStateDescriptor::<u64>::new("v"))
                        .unwrap();
                    value.update(&(key + round)).unwrap();
                }
            };
            write(0);
            job::checkpoint(&backends, &mut coordinator, SnapshotKind::Incremental).unwrap();
            ready_tx.send(()).unwrap();
            let mut round = 1;
            while !stop.load(Ordering::Relaxed) {
                write(round);
                // Compacted, each checkpoint has new files and the old ones go with retention.
                backends.iter().for_each(|b| b.compact().unwrap());
                job::checkpoint(&backends, &mut coordinator, SnapshotKind::Incremental).unwrap();
                round += 1;
                // A checkpoint every 50 ms: more often than jobs do, less than back to back (on
                // a loaded machine verify would otherwise never catch up).
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        // The first checkpoint is complete before verify runs (or the job failed: no wait).
        let _ = ready_rx.recv();
        // Failures are collected, not asserted here: the writer must be stopped either way.
        let failures: Vec<String> = (0..15)
            .map(|_| keyedstate(&["verify", root.to_str().unwrap()]))
            .filter(|out| !out.status.success())
            .map(|out| format!("{}{}", text(&out.stdout), text(&out.stderr)))
            .collect();
        stop.store(true, Ordering::Relaxed);
        failures
    });
    assert!(
        failures.is_empty(),
        "{} of 15 failed: {failures:?}",
        failures.len()
    );
}
