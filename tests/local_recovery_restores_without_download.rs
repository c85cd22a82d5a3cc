//! Local recovery (Flink's `state.backend.local-recovery`): each subtask keeps a local copy of
//! its last completed checkpoint and restores from it at the same parallelism without reading
//! the remote storage, falling back to the remote copy file by file where the local one is
//! missing or fails its checksum.

mod common;

use common::TestJob;
use keyedstate::SnapshotKind;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage, LocalRecovery,
};
use keyedstate::job::{self, Engine};
use keyedstate_testkit::faults::{Fault, FaultyStorage};
use std::sync::Arc;

const CASES: [(Engine, SnapshotKind); 3] = [
    (Engine::RocksDb, SnapshotKind::Incremental),
    (Engine::RocksDb, SnapshotKind::Full),
    (Engine::Heap, SnapshotKind::Full),
];

struct Setup {
    dir: tempfile::TempDir,
    remote: Arc<FaultyStorage>,
    local: Vec<Arc<LocalRecovery>>,
    job: TestJob,
    latest: CheckpointMetadata,
}

/// Two subtasks, three checkpoints through their local recovery.
fn checkpointed(engine: Engine, kind: SnapshotKind) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("remote")).unwrap());
    let remote = Arc::new(FaultyStorage::new(inner));
    let local: Vec<Arc<LocalRecovery>> = (0..2)
        .map(|i| {
            let at = dir.path().join(format!("local/subtask-{i}"));
            Arc::new(LocalRecovery::new(remote.clone(), at).unwrap())
        })
        .collect();
    let job = TestJob::new(engine, 128, 2);
    let mut coordinator = CheckpointCoordinator::open(remote.clone(), 1).unwrap();
    let mut latest = None;
    for round in 0..3 {
        job.write_round(round);
        latest = Some(
            job::checkpoint_with_local_recovery(&job.backends, &local, &mut coordinator, kind)
                .unwrap(),
        );
    }
    Setup {
        dir,
        remote,
        local,
        job,
        latest: latest.unwrap(),
    }
}

/// Restores subtask `i` of 2 through `local[i]`.
fn restore(setup: &Setup, engine: Engine) -> keyedstate::StateDigest {
    let work = tempfile::tempdir().unwrap();
    let mut total = keyedstate::StateDigest::default();
    for (i, local) in setup.local.iter().enumerate() {
        let storage: Arc<dyn CheckpointStorage> = local.clone();
        let backend =
            job::restore_subtask(engine, &setup.latest, &storage, 2, i as u32, work.path())
                .unwrap();
        total.merge(backend.digest().unwrap());
        backend.close().unwrap();
    }
    total
}

fn remote_files_read(setup: &Setup) -> u64 {
    setup.local.iter().map(|l| l.reads().remote_files).sum()
}

#[test]
fn a_restore_at_the_same_parallelism_reads_nothing_remote() {
    for (engine, kind) in CASES {
        let setup = checkpointed(engine, kind);
        // The remote storage is gone: every call to it fails from now on.
        setup.remote.fail_after(1, Fault::Crash);
        assert_eq!(
            restore(&setup, engine),
            setup.job.digest(),
            "{engine:?} {kind:?}"
        );
        assert_eq!(remote_files_read(&setup), 0, "{engine:?} {kind:?}");
        let local: u64 = setup.local.iter().map(|l| l.reads().local_files).sum();
        assert_eq!(
            local,
            setup.latest.files().count() as u64,
            "{engine:?} {kind:?}"
        );
    }
}

#[test]
fn the_local_copy_holds_only_the_last_completed_checkpoint() {
    for (engine, kind) in CASES {
        let setup = checkpointed(engine, kind);
        for (i, local) in setup.local.iter().enumerate() {
            let mut held = Vec::new();
            for dir in std::fs::read_dir(local.local_dir()).unwrap() {
                let name = dir.unwrap().file_name().to_string_lossy().into_owned();
                let storage = DirectoryStorage::new(local.local_dir()).unwrap();
                held.extend(storage.list_files(&name).unwrap());
            }
            held.sort();
            let mut expected: Vec<String> = setup.latest.subtasks[i]
                .files()
                .iter()
                .map(|f| f.path.clone())
                .collect();
            expected.sort();
            assert_eq!(held, expected, "{engine:?} {kind:?} subtask {i}");
        }
    }
}

#[test]
fn a_damaged_or_missing_local_file_is_read_from_the_remote_copy() {
    for (engine, kind) in CASES {
        let setup = checkpointed(engine, kind);
        let mut files = setup.latest.subtasks[0].files();
        files.sort_by_key(|f| std::cmp::Reverse(f.size));
        // One local file damaged (a flipped bit in the largest), another gone.
        let damaged = setup.local[0].local_dir().join(&files[0].path);
        let mut bytes = std::fs::read(&damaged).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x10;
        std::fs::remove_file(&damaged).unwrap(); // a hard link: the remote file stays whole
        std::fs::write(&damaged, bytes).unwrap();
        let missing = files.last().unwrap();
        std::fs::remove_file(setup.local[0].local_dir().join(&missing.path)).unwrap();
        assert_eq!(
            restore(&setup, engine),
            setup.job.digest(),
            "{engine:?} {kind:?}"
        );
        let expected = if files.len() > 1 { 2 } else { 1 };
        assert_eq!(remote_files_read(&setup), expected, "{engine:?} {kind:?}");
    }
}

#[test]
fn without_a_local_copy_the_restore_reads_the_remote_one() {
    for (engine, kind) in CASES {
        let setup = checkpointed(engine, kind);
        std::fs::remove_dir_all(setup.dir.path().join("local")).unwrap();
        assert_eq!(
            restore(&setup, engine),
            setup.job.digest(),
            "{engine:?} {kind:?}"
        );
        assert_eq!(
            remote_files_read(&setup),
            setup.latest.files().count() as u64,
            "{engine:?} {kind:?}"
        );
        // The SSTs read remotely are in the local copy again, for the checkpoints after.
        for (i, local) in setup.local.iter().enumerate() {
            for file in setup.latest.subtasks[i].files() {
                let here = local.local_dir().join(&file.path);
                assert_eq!(here.exists(), file.is_shared(), "{}", file.path);
            }
        }
    }
}
