//! A small keyed job for checkpoint tests: P subtasks of one engine, and a deterministic workload
//! of value, list, map and reducing state with updates and deletions.
#![allow(dead_code)]

use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage,
};
use keyedstate::codec;
use keyedstate::job::{self, Engine};
use keyedstate::{
    KeyedStateBackend, ListStateDescriptor, MapStateDescriptor, MaxParallelism,
    ReducingStateDescriptor, Result, SnapshotKind, StateDigest, ValueStateDescriptor,
};
use std::sync::Arc;

pub const KEYS: u64 = 300;

pub struct TestJob {
    pub engine: Engine,
    pub max_p: MaxParallelism,
    pub backends: Vec<KeyedStateBackend>,
    _work: tempfile::TempDir,
}

impl TestJob {
    pub fn new(engine: Engine, max_parallelism: u32, parallelism: u32) -> Self {
        let work = tempfile::tempdir().unwrap();
        let max_p = MaxParallelism::new(max_parallelism).unwrap();
        let backends = (0..parallelism)
            .map(|i| job::open_subtask(engine, max_p, parallelism, i, work.path()).unwrap())
            .collect();
        TestJob {
            engine,
            max_p,
            backends,
            _work: work,
        }
    }

    pub fn restored(
        engine: Engine,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
        parallelism: u32,
    ) -> Result<Self> {
        let work = tempfile::tempdir().unwrap();
        let backends = (0..parallelism)
            .map(|i| job::restore_subtask(engine, metadata, storage, parallelism, i, work.path()))
            .collect::<Result<Vec<_>>>()?;
        Ok(TestJob {
            engine,
            max_p: metadata.max_parallelism,
            backends,
            _work: work,
        })
    }

    pub fn backend_of(&self, key: u64) -> &KeyedStateBackend {
        let mut bytes = Vec::new();
        codec::encode(&key, &mut bytes).unwrap();
        let p = self.backends.len() as u32;
        &self.backends[self
            .max_p
            .subtask_of(self.max_p.key_group_of(&bytes), p)
            .unwrap() as usize]
    }

    /// Round `round` of the workload: updates about a third of the keys, deletes some.
    pub fn write_round(&self, round: u64) {
        for key in 0..KEYS {
            if !(key + round).is_multiple_of(3) {
                continue;
            }
            let backend = self.backend_of(key);
            let value = backend
                .value_state(&ValueStateDescriptor::<u64>::new("value"))
                .unwrap();
            let list = backend
                .list_state(&ListStateDescriptor::<u64>::new("list"))
                .unwrap();
            let mut map = backend
                .map_state(&MapStateDescriptor::<u32, String>::new("map"))
                .unwrap();
            let count = backend
                .reducing_state(&ReducingStateDescriptor::new(
                    "count",
                    |a: &u64, b: &u64| a + b,
                ))
                .unwrap();
            backend.set_current_key(&key).unwrap();
            value.update(&(round * 1000 + key)).unwrap();
            list.add(&round).unwrap();
            map.set_namespace(&(round % 2)).unwrap();
            map.put(&((round % 5) as u32), &format!("r{round}k{key}"))
                .unwrap();
            count.add(&1).unwrap();
            if (key + round).is_multiple_of(7) {
                value.clear().unwrap();
                map.remove(&((round % 5) as u32)).unwrap();
            }
        }
    }

    pub fn digest(&self) -> StateDigest {
        job::digest(&self.backends).unwrap()
    }

    pub fn checkpoint(
        &self,
        coordinator: &mut CheckpointCoordinator,
        kind: SnapshotKind,
    ) -> CheckpointMetadata {
        job::checkpoint(&self.backends, coordinator, kind).unwrap()
    }

    /// The value state of `key`, read through the typed API.
    pub fn value_of(&self, key: u64) -> Option<u64> {
        let backend = self.backend_of(key);
        let value = backend
            .value_state(&ValueStateDescriptor::<u64>::new("value"))
            .unwrap();
        backend.set_current_key(&key).unwrap();
        value.get().unwrap()
    }
}

/// A coordinator over a fresh directory; the directory lives as long as the returned guard.
pub fn directory_coordinator(
    retained: usize,
) -> (
    tempfile::TempDir,
    Arc<dyn CheckpointStorage>,
    CheckpointCoordinator,
) {
    let dir = tempfile::tempdir().unwrap();
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("checkpoints")).unwrap());
    let coordinator = CheckpointCoordinator::open(storage.clone(), retained).unwrap();
    (dir, storage, coordinator)
}

/// Copies a directory tree (a checkpoint root), so a test can damage the copy.
pub fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Two writers of one root (a split brain) take checkpoint 1 of different state at the same
/// time: both upload, the first completes, the second is refused with `InvalidArgument`. The
/// first's checkpoint restores to its state, and no file of the second stays: its abort removes
/// its own, or (`loser_dies`) it dies before completing and garbage collection removes them.
pub fn race_for_one_checkpoint_id(
    engine: Engine,
    kind: SnapshotKind,
    storage: &Arc<dyn CheckpointStorage>,
    loser_dies: bool,
) {
    let what = format!("{engine:?} {kind:?} on {}", storage.describe());
    let (first, second) = (TestJob::new(engine, 128, 2), TestJob::new(engine, 128, 2));
    first.write_round(0);
    for round in 0..3 {
        second.write_round(round);
    }
    assert_ne!(first.digest(), second.digest());
    let mut a = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let mut b = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let (pa, pb) = (a.trigger().unwrap(), b.trigger().unwrap());
    assert_eq!((pa.id(), pb.id()), (1, 1), "{what}");
    // Both write every file before either writes `_metadata`.
    let upload = |job: &TestJob, pending: &keyedstate::checkpoint::PendingCheckpoint| {
        job.backends
            .iter()
            .enumerate()
            .map(|(i, backend)| {
                backend
                    .snapshot(pending.id(), kind)
                    .unwrap()
                    .run(storage, pending.attempt(), i as u32)
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let (ha, hb) = (upload(&first, &pa), upload(&second, &pb));
    let winner = a.complete(pa, first.max_p, ha).unwrap().clone();
    if loser_dies {
        drop(pb);
        let report = keyedstate::checkpoint::collect_garbage(storage.as_ref(), false).unwrap();
        assert!(!report.removed_files.is_empty(), "{what}");
    } else {
        let err = b.complete(pb, second.max_p, hb).unwrap_err();
        assert_eq!(
            err.kind(),
            keyedstate::ErrorKind::InvalidArgument,
            "{what}: {err}"
        );
        assert!(err.to_string().contains("another writer"), "{what}: {err}");
    }
    let latest = keyedstate::checkpoint::load_latest(storage.as_ref()).unwrap();
    assert_eq!(latest, winner, "{what}");
    let restored = TestJob::restored(engine, &latest, storage, 2).unwrap();
    assert_eq!(restored.digest(), first.digest(), "{what}");
    // What is left is the winner's files and its `_metadata`, nothing of the loser's.
    let mut left = storage.list_files("chk-1").unwrap();
    left.extend(storage.list_files("shared").unwrap());
    let mut expected: Vec<String> = winner.files().map(|f| f.path.clone()).collect();
    expected.push("chk-1/_metadata".to_owned());
    left.sort();
    expected.sort();
    assert_eq!(left, expected, "{what}");
}

/// Every entry a backend holds lies in its key-group range; returns the entries per subtask.
pub fn entries_in_own_key_groups(job: &TestJob) -> Vec<u64> {
    job.backends
        .iter()
        .map(|backend| {
            let range = backend.key_group_range();
            let mut count = 0;
            for meta in backend.states().unwrap() {
                backend
                    .scan_raw(&meta.name, &mut |entry| {
                        assert!(
                            range.contains(entry.parts.key_group),
                            "key group {} in {range}",
                            entry.parts.key_group
                        );
                        count += 1;
                        Ok(std::ops::ControlFlow::Continue(()))
                    })
                    .unwrap();
            }
            count
        })
        .collect()
}
