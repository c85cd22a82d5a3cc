//! A checkpoint that fails at its n-th I/O call, for every n from 1 to the number of calls it
//! makes, on both engines and both snapshot kinds, once as an I/O error and once as a crash of
//! the process: either the checkpoint completes and restores, or it fails with a typed error and
//! the previous checkpoint still restores; and the next checkpoint succeeds and restores.

mod common;

use common::TestJob;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, load_latest,
};
use keyedstate::job::{self, Engine};
use keyedstate::{ErrorKind, SnapshotKind, StateDigest};
use keyedstate_testkit::faults::{Fault, FaultyStorage};
use std::collections::BTreeMap;
use std::sync::Arc;

struct Setup {
    _dir: tempfile::TempDir,
    inner: Arc<dyn CheckpointStorage>,
    faulty: Arc<FaultyStorage>,
    coordinator: CheckpointCoordinator,
    job: TestJob,
    /// The digest each checkpoint id holds.
    digests: BTreeMap<u64, StateDigest>,
}

/// A job of two subtasks with one completed checkpoint, and changes since.
fn setup(engine: Engine, kind: SnapshotKind) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let inner: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("checkpoints")).unwrap());
    let faulty = Arc::new(FaultyStorage::new(inner.clone()));
    let storage: Arc<dyn CheckpointStorage> = faulty.clone();
    let mut coordinator = CheckpointCoordinator::open(storage, 1).unwrap();
    let job = TestJob::new(engine, 128, 2);
    job.write_round(0);
    let base = job.checkpoint(&mut coordinator, kind);
    let mut digests = BTreeMap::new();
    digests.insert(base.checkpoint_id, job.digest());
    job.write_round(1);
    Setup {
        _dir: dir,
        inner,
        faulty,
        coordinator,
        job,
        digests,
    }
}

/// The latest checkpoint of `storage` restores the digest it was taken with.
fn assert_latest_restores(setup: &Setup, what: &str) -> u64 {
    let latest = load_latest(setup.inner.as_ref()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let expected = setup.digests.get(&latest.checkpoint_id).unwrap_or_else(|| {
        panic!(
            "{what}: checkpoint {} was never taken",
            latest.checkpoint_id
        )
    });
    let restored = TestJob::restored(setup.job.engine, &latest, &setup.inner, 3)
        .unwrap_or_else(|e| panic!("{what}: checkpoint {}: {e}", latest.checkpoint_id));
    assert_eq!(&restored.digest(), expected, "{what}");
    latest.checkpoint_id
}

/// The I/O calls one checkpoint (after the first) makes.
fn calls_of_one_checkpoint(engine: Engine, kind: SnapshotKind) -> u64 {
    let mut s = setup(engine, kind);
    let before = s.faulty.calls();
    job::checkpoint(&s.job.backends, &mut s.coordinator, kind).unwrap();
    s.faulty.calls() - before
}

fn fail_at_every_call(engine: Engine, kind: SnapshotKind, fault: Fault) {
    let calls = calls_of_one_checkpoint(engine, kind);
    // At least a snapshot file per subtask and `_metadata`.
    assert!(calls >= 3, "{engine:?} {kind:?}: {calls} calls");
    eprintln!("{engine:?} {kind:?} {fault:?}: a checkpoint makes {calls} I/O calls");
    let (mut completed, mut failed) = (0, 0);
    for n in 1..=calls {
        let what = format!("{engine:?} {kind:?} {fault:?} at call {n} of {calls}");
        let mut s = setup(engine, kind);
        s.faulty.fail_after(n, fault);
        let next_id = s.digests.keys().max().unwrap() + 1;
        s.digests.insert(next_id, s.job.digest());
        match job::checkpoint(&s.job.backends, &mut s.coordinator, kind) {
            Ok(metadata) => {
                assert_eq!(metadata.checkpoint_id, next_id, "{what}");
                completed += 1;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}");
                failed += 1;
            }
        }
        let latest = assert_latest_restores(&s, &what);
        // The next checkpoint: the same job when the failure was an error; after a crash, a
        // restarted job restored from the latest checkpoint, with a new coordinator.
        if fault == Fault::Crash {
            let metadata = load_latest(s.inner.as_ref()).unwrap();
            s.job = TestJob::restored(engine, &metadata, &s.inner, 2).unwrap();
            s.faulty = Arc::new(FaultyStorage::new(s.inner.clone()));
            let storage: Arc<dyn CheckpointStorage> = s.faulty.clone();
            s.coordinator = CheckpointCoordinator::open(storage, 1)
                .unwrap_or_else(|e| panic!("{what}: reopening: {e}"));
        } else {
            s.faulty.disarm();
        }
        s.job.write_round(2);
        let metadata = job::checkpoint(&s.job.backends, &mut s.coordinator, kind)
            .unwrap_or_else(|e| panic!("{what}: the next checkpoint: {e}"));
        assert!(metadata.checkpoint_id > latest);
        s.digests.insert(metadata.checkpoint_id, s.job.digest());
        assert_latest_restores(&s, &format!("{what}, the next checkpoint"));
    }
    assert_eq!(completed + failed, calls);
    eprintln!("  {completed} completed, {failed} failed with a typed error, every one restored");
    assert!(
        failed > 0,
        "{engine:?} {kind:?} {fault:?}: no call made it fail"
    );
}

#[test]
fn rocksdb_incremental_checkpoint_survives_an_error_at_every_io_call() {
    fail_at_every_call(Engine::RocksDb, SnapshotKind::Incremental, Fault::Error);
}

#[test]
fn rocksdb_incremental_checkpoint_survives_a_crash_at_every_io_call() {
    fail_at_every_call(Engine::RocksDb, SnapshotKind::Incremental, Fault::Crash);
}

#[test]
fn rocksdb_full_checkpoint_survives_an_error_or_a_crash_at_every_io_call() {
    fail_at_every_call(Engine::RocksDb, SnapshotKind::Full, Fault::Error);
    fail_at_every_call(Engine::RocksDb, SnapshotKind::Full, Fault::Crash);
}

#[test]
fn heap_checkpoint_survives_an_error_or_a_crash_at_every_io_call() {
    fail_at_every_call(Engine::Heap, SnapshotKind::Full, Fault::Error);
    fail_at_every_call(Engine::Heap, SnapshotKind::Full, Fault::Crash);
}

/// A restore that fails at its n-th read, for every n: a typed error, and the checkpoint
/// restores whole afterwards.
#[test]
fn restore_fails_with_a_typed_error_at_every_io_call_and_then_succeeds() {
    for (engine, kind) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::RocksDb, SnapshotKind::Full),
        (Engine::Heap, SnapshotKind::Full),
    ] {
        let s = setup(engine, kind);
        let metadata = load_latest(s.inner.as_ref()).unwrap();
        let storage: Arc<dyn CheckpointStorage> = s.faulty.clone();
        let before = s.faulty.calls();
        TestJob::restored(engine, &metadata, &storage, 3).unwrap();
        let calls = s.faulty.calls() - before;
        assert!(calls > 0);
        for n in 1..=calls {
            let what = format!("{engine:?} {kind:?} restore failing at call {n} of {calls}");
            s.faulty.fail_after(n, Fault::Error);
            match TestJob::restored(engine, &metadata, &storage, 3) {
                Err(e) => assert_eq!(e.kind(), ErrorKind::Io, "{what}: {e}"),
                Ok(_) => panic!("{what}: restored although a read failed"),
            }
        }
        s.faulty.disarm();
        let restored = TestJob::restored(engine, &metadata, &storage, 3).unwrap();
        assert_eq!(
            Some(&restored.digest()),
            s.digests.get(&metadata.checkpoint_id)
        );
    }
}
