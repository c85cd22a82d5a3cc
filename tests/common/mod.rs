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
