//! Restoring a checkpoint that is not the latest, into the root that holds it and later ones:
//! neither the coordinator's opening nor its retention deletes a file the restored instance goes
//! on to reference, in either restore mode; `NoClaim` deletes no checkpoint that was there
//! before (even after the job resumes from its own checkpoint), `Claim` lets later checkpoints
//! subsume the restored one.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, RestoreMode, load_latest,
    load_metadata,
};
use keyedstate::job::Engine;
use keyedstate::{SnapshotKind, StateDigest};
use std::sync::Arc;

/// Every file of every completed checkpoint in `storage` is there, whole.
fn assert_all_checkpoints_whole(storage: &Arc<dyn CheckpointStorage>, what: &str) -> Vec<u64> {
    let mut ids = Vec::new();
    for (id, done) in storage.checkpoint_dirs().unwrap() {
        if !done {
            continue;
        }
        let metadata = load_metadata(storage.as_ref(), id).unwrap();
        for file in metadata.files() {
            storage
                .verify(file)
                .unwrap_or_else(|e| panic!("{what}: checkpoint {id}: {e}"));
        }
        ids.push(id);
    }
    ids.sort_unstable();
    ids
}

/// A root with checkpoints 1, 2 and 3 of a RocksDB job (incremental, sharing SST files), and the
/// digest each one holds.
fn root_with_three_checkpoints() -> (
    tempfile::TempDir,
    Arc<dyn CheckpointStorage>,
    Vec<(CheckpointMetadata, StateDigest)>,
) {
    let (dir, storage, mut coordinator) = directory_coordinator(3);
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    let mut taken = Vec::new();
    for round in 0..3 {
        job.write_round(round);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
        taken.push((metadata, job.digest()));
        // Compacted, later checkpoints hold none of this one's SST files.
        for backend in &job.backends {
            backend.compact().unwrap();
        }
    }
    let shared = |m: &CheckpointMetadata| -> Vec<String> {
        m.files()
            .filter(|f| f.is_shared())
            .map(|f| f.path.clone())
            .collect()
    };
    assert!(
        shared(&taken[0].0)
            .iter()
            .all(|f| !shared(&taken[2].0).contains(f)),
        "checkpoint 1 has SST files of its own"
    );
    for backend in &job.backends {
        backend.close().unwrap();
    }
    (dir, storage, taken)
}

/// Restores checkpoint 1 in `mode` with `retained` 1, then takes three more checkpoints, each
/// restored and compared; returns the checkpoints left in the root.
fn restore_oldest_and_go_on(mode: RestoreMode) -> Vec<u64> {
    let (_dir, storage, taken) = root_with_three_checkpoints();
    let (oldest, oldest_digest) = &taken[0];
    let job = TestJob::restored(Engine::RocksDb, oldest, &storage, 2).unwrap();
    assert_eq!(&job.digest(), oldest_digest);
    let mut coordinator =
        CheckpointCoordinator::open_restored(storage.clone(), 1, oldest, mode).unwrap();
    assert_all_checkpoints_whole(&storage, &format!("{mode:?}: after opening"));
    for round in 10..13 {
        job.write_round(round);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
        assert!(metadata.checkpoint_id > 3);
        let what = format!("{mode:?}: checkpoint {}", metadata.checkpoint_id);
        assert_all_checkpoints_whole(&storage, &what);
        let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 3).unwrap();
        assert_eq!(restored.digest(), job.digest(), "{what}");
    }
    // The job stops and resumes from its own latest checkpoint: what it did not own stays.
    let latest = load_latest(storage.as_ref()).unwrap();
    let mut resumed = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let job = TestJob::restored(Engine::RocksDb, &latest, &storage, 2).unwrap();
    job.write_round(20);
    let after = job.checkpoint(&mut resumed, SnapshotKind::Incremental);
    let left = assert_all_checkpoints_whole(&storage, &format!("{mode:?}: after resuming"));
    let restored = TestJob::restored(Engine::RocksDb, &after, &storage, 1).unwrap();
    assert_eq!(restored.digest(), job.digest());
    left
}

#[test]
fn no_claim_restore_of_an_older_checkpoint_deletes_nothing_it_did_not_write() {
    let left = restore_oldest_and_go_on(RestoreMode::NoClaim);
    // 1, 2 and 3 are not the job's; of its own, the latest one is retained.
    assert_eq!(left, vec![1, 2, 3, 7]);
}

#[test]
fn claim_restore_of_an_older_checkpoint_lets_later_ones_subsume_it() {
    let left = restore_oldest_and_go_on(RestoreMode::Claim);
    // 1 was claimed and subsumed; 2 and 3 belong to the job that wrote them.
    assert_eq!(left, vec![2, 3, 7]);
}

#[test]
fn opening_a_root_to_resume_it_owns_its_checkpoints() {
    let (_dir, storage, _taken) = root_with_three_checkpoints();
    // A job resuming its own root keeps only the latest `retained`.
    let coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    assert_eq!(coordinator.completed().count(), 1);
    assert_eq!(assert_all_checkpoints_whole(&storage, "resumed"), vec![3]);
}

#[test]
fn restoring_from_another_root_claims_nothing_there() {
    let (_dir, source, taken) = root_with_three_checkpoints();
    let (oldest, digest) = &taken[0];
    let (_out, storage, _) = directory_coordinator(1);
    let job = TestJob::restored(Engine::RocksDb, oldest, &source, 2).unwrap();
    let mut coordinator =
        CheckpointCoordinator::open_restored(storage.clone(), 1, oldest, RestoreMode::Claim)
            .unwrap();
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    // Ids go on after the restored checkpoint's; every file is in the new root.
    assert_eq!(metadata.checkpoint_id, oldest.checkpoint_id + 1);
    assert_all_checkpoints_whole(&storage, "new root");
    let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
    assert_eq!(&restored.digest(), digest);
    assert_eq!(
        assert_all_checkpoints_whole(&source, "source root"),
        vec![1, 2, 3]
    );
}
