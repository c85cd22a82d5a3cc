//! A subtask may take its next snapshot before it hears that the previous checkpoint completed
//! (the notification is late). It then uploads SST files that checkpoint already holds, under
//! the same names: identical files are taken as they are, and nothing the completed checkpoint
//! references is ever removed.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::ErrorKind;
use keyedstate::SnapshotKind;
use keyedstate::checkpoint::{CheckpointStorage, DirectoryStorage};
use keyedstate::job::Engine;
use std::sync::Arc;

#[test]
fn a_late_completion_notification_loses_nothing() {
    let (_dir, storage, mut coordinator) = directory_coordinator(2);
    let job = TestJob::new(Engine::RocksDb, 128, 1);
    let backend = &job.backends[0];
    job.write_round(0);
    let first_pending = coordinator.trigger().unwrap();
    let handle = backend
        .snapshot(first_pending.id(), SnapshotKind::Incremental)
        .unwrap()
        .run(&storage, first_pending.attempt(), 0)
        .unwrap();
    let first = coordinator
        .complete(first_pending, job.max_p, vec![handle])
        .unwrap()
        .clone();
    let first_digest = job.digest();
    // No notify_checkpoint_complete: the next snapshot still thinks nothing is confirmed.
    job.write_round(1);
    let second_pending = coordinator.trigger().unwrap();
    let handle = backend
        .snapshot(second_pending.id(), SnapshotKind::Incremental)
        .unwrap()
        .run(&storage, second_pending.attempt(), 0)
        .unwrap();
    let second = coordinator
        .complete(second_pending, job.max_p, vec![handle])
        .unwrap()
        .clone();
    backend
        .notify_checkpoint_complete(second.checkpoint_id)
        .unwrap();
    let shared = |m: &keyedstate::checkpoint::CheckpointMetadata| -> Vec<String> {
        m.files()
            .filter(|f| f.is_shared())
            .map(|f| f.path.clone())
            .collect()
    };
    assert!(
        shared(&first).iter().all(|p| shared(&second).contains(p)),
        "the re-uploaded files are the same files"
    );
    for (metadata, digest) in [(&first, first_digest), (&second, job.digest())] {
        for file in metadata.files() {
            storage.verify(file).unwrap();
        }
        let restored = TestJob::restored(Engine::RocksDb, metadata, &storage, 1).unwrap();
        assert_eq!(
            restored.digest(),
            digest,
            "checkpoint {}",
            metadata.checkpoint_id
        );
    }
}

#[test]
fn storing_over_an_existing_file_takes_it_only_when_identical() {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("root")).unwrap());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::write(&a, b"same bytes").unwrap();
    std::fs::write(&b, b"other bytes").unwrap();
    let first = storage.put_file("shared/x.sst", &a).unwrap();
    assert!(first.created);
    let again = storage.put_file("shared/x.sst", &a).unwrap();
    assert!(!again.created, "an identical file is taken as it is");
    assert_eq!(again.file, first.file);
    let err = storage.put_file("shared/x.sst", &b).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(err.to_string().contains("shared/x.sst"), "{err}");
    storage.verify(&first.file).unwrap();
}
