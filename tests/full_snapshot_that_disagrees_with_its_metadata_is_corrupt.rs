//! A full snapshot whose own header disagrees with `_metadata` (another subtask's file, with
//! valid sizes and checksums everywhere) is `Corruption` on every restore path, never a panic.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::checkpoint::SnapshotHandle;
use keyedstate::job::Engine;
use keyedstate::{ErrorKind, SnapshotKind};

#[test]
fn another_subtasks_full_snapshot_in_a_handle_is_corruption_not_a_panic() {
    for source in [Engine::Heap, Engine::RocksDb] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let job = TestJob::new(source, 128, 2);
        job.write_round(0);
        let mut metadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
        // Subtask 0's handle names subtask 1's file (key groups 64..=127): every checksum holds.
        let SnapshotHandle::Full { file } = metadata.subtasks[1].snapshot.clone() else {
            panic!("a full snapshot");
        };
        metadata.subtasks[0].snapshot = SnapshotHandle::Full { file };
        // `_metadata` is written only where none is: the damaged one replaces the real one.
        storage
            .delete(&format!("chk-{}/_metadata", metadata.checkpoint_id))
            .unwrap();
        storage
            .write_metadata(metadata.checkpoint_id, &metadata.encode().unwrap())
            .unwrap();
        for target in [Engine::Heap, Engine::RocksDb] {
            for parallelism in [1, 2, 3] {
                let what = format!("{source:?} into {target:?} at {parallelism}");
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    TestJob::restored(target, &metadata, &storage, parallelism).err()
                }));
                let err = result
                    .unwrap_or_else(|_| panic!("{what}: panicked"))
                    .unwrap_or_else(|| panic!("{what}: restored"));
                assert_eq!(err.kind(), ErrorKind::Corruption, "{what}: {err}");
                assert!(
                    err.to_string().contains("key groups [64, 127]"),
                    "{what}: {err}"
                );
            }
        }
    }
}
