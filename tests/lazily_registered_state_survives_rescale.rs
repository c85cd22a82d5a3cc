//! A state that only some subtasks registered (lazily, on their first record for it, as a Flink
//! operator does) is in the checkpoint and comes back whole on every restore path; a state two
//! subtasks registered differently fails the checkpoint, naming both; version 1 metadata (one
//! state list for the whole job) still restores.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::checkpoint::{CheckpointMetadata, CheckpointStorage, load_metadata};
use keyedstate::codec;
use keyedstate::job::{self, Engine};
use keyedstate::{
    ErrorKind, KeyedStateBackend, MaxParallelism, SnapshotKind, ValueStateDescriptor,
};
use std::ops::ControlFlow;
use std::sync::Arc;

const PARALLELISM: u32 = 3;
const LATE_KEYS: u64 = 3_000;

/// Writes `late` for every key of `0..LATE_KEYS` that subtask 1 owns; returns those keys.
fn write_late_on_subtask_one(job: &TestJob) -> Vec<u64> {
    let backend = &job.backends[1];
    let late = backend
        .value_state(&ValueStateDescriptor::<u64>::new("late"))
        .unwrap();
    let mut written = Vec::new();
    for key in 0..LATE_KEYS {
        if std::ptr::eq(job.backend_of(key), backend) {
            backend.set_current_key(&key).unwrap();
            late.update(&(key * 10)).unwrap();
            written.push(key);
        }
    }
    written
}

fn key_group_of(job: &TestJob, key: u64) -> u16 {
    let mut bytes = Vec::new();
    codec::encode(&key, &mut bytes).unwrap();
    job.max_p.key_group_of(&bytes)
}

/// Every key of `late` comes back once, in the subtask owning it, and no subtask holds an entry
/// of any state outside its key groups.
fn check_late(restored: &TestJob, keys: &[u64], what: &str) {
    let mut found = 0;
    for key in keys {
        let backend = restored.backend_of(*key);
        let late = backend
            .value_state(&ValueStateDescriptor::<u64>::new("late"))
            .unwrap();
        backend.set_current_key(key).unwrap();
        assert_eq!(late.get().unwrap(), Some(key * 10), "{what}: key {key}");
        found += 1;
    }
    assert_eq!(found, keys.len(), "{what}");
    for backend in &restored.backends {
        assert_every_entry_in_range(backend, what);
    }
    let total: usize = restored
        .backends
        .iter()
        .map(|b| b.keys::<u64, _>("late", &()).unwrap().len())
        .sum();
    assert_eq!(
        total,
        keys.len(),
        "{what}: keys() of 'late' over all subtasks"
    );
    for key in keys {
        assert!(
            restored
                .max_p
                .full_range()
                .contains(key_group_of(restored, *key))
        );
    }
}

fn assert_every_entry_in_range(backend: &KeyedStateBackend, what: &str) {
    let range = backend.key_group_range();
    for meta in backend.states().unwrap() {
        backend
            .scan_raw(&meta.name, &mut |entry| {
                assert!(
                    range.contains(entry.parts.key_group),
                    "{what}: state '{}' holds key group {} outside {range}",
                    meta.name,
                    entry.parts.key_group
                );
                Ok(ControlFlow::Continue(()))
            })
            .unwrap();
    }
}

#[test]
fn a_state_of_one_subtask_comes_back_at_every_parallelism_on_both_engines() {
    for source in [Engine::RocksDb, Engine::Heap] {
        for kind in [SnapshotKind::Incremental, SnapshotKind::Full] {
            let (_dir, storage, mut coordinator) = directory_coordinator(1);
            let job = TestJob::new(source, 128, PARALLELISM);
            job.write_round(0);
            let keys = write_late_on_subtask_one(&job);
            assert!(keys.len() > 900, "subtask 1 owns about a third of the keys");
            let metadata = job.checkpoint(&mut coordinator, kind);
            assert!(metadata.states.iter().any(|m| m.name == "late"));
            assert!(metadata.subtasks[0].states.iter().all(|m| m.name != "late"));
            let digest = job.digest();
            for target in [Engine::RocksDb, Engine::Heap] {
                for parallelism in [1, 2, 3, 5] {
                    let what = format!("{source:?} {kind:?} 3 -> {parallelism} into {target:?}");
                    let restored = TestJob::restored(target, &metadata, &storage, parallelism)
                        .unwrap_or_else(|e| panic!("{what}: {e}"));
                    check_late(&restored, &keys, &what);
                    assert_eq!(restored.digest(), digest, "{what}");
                }
            }
        }
    }
}

#[test]
fn a_rescaled_checkpoint_of_a_lazy_state_keeps_it_through_a_second_rescale() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::RocksDb, 128, PARALLELISM);
    job.write_round(0);
    let keys = write_late_on_subtask_one(&job);
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    // 3 -> 2, checkpointed by the restored job, then 2 -> 4.
    let (_dir2, storage2, mut coordinator2) = directory_coordinator(1);
    let middle = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
    let second = middle.checkpoint(&mut coordinator2, SnapshotKind::Incremental);
    assert!(
        second
            .subtasks
            .iter()
            .all(|h| h.states.iter().any(|m| m.name == "late"))
    );
    let last = TestJob::restored(Engine::RocksDb, &second, &storage2, 4).unwrap();
    check_late(&last, &keys, "3 -> 2 -> 4");
}

#[test]
fn two_subtasks_registering_one_state_differently_fail_the_checkpoint() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::Heap, 128, 2);
    job.backends[0]
        .value_state(&ValueStateDescriptor::<u64>::new("clash"))
        .unwrap();
    job.backends[1]
        .value_state(&ValueStateDescriptor::<String>::new("clash"))
        .unwrap();
    let err = job::checkpoint(&job.backends, &mut coordinator, SnapshotKind::Full).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("subtask 0") && message.contains("subtask 1") && message.contains("clash"),
        "{message}"
    );
    assert!(storage.checkpoint_dirs().unwrap().is_empty(), "aborted");
    // The next checkpoint without the clash succeeds.
    let fine = TestJob::new(Engine::Heap, 128, 2);
    fine.write_round(1);
    job::checkpoint(&fine.backends, &mut coordinator, SnapshotKind::Full).unwrap();
}

/// Rewrites a checkpoint's `_metadata` as version 1 wrote it: no per-subtask states.
fn downgrade_to_version_1(storage: &Arc<dyn CheckpointStorage>, metadata: &CheckpointMetadata) {
    let mut old = metadata.clone();
    old.version = 1;
    for handle in &mut old.subtasks {
        handle.states.clear();
    }
    let mut json = serde_json::to_value(&old).unwrap();
    // Version 1 wrote no `states` in a handle.
    for handle in json["subtasks"].as_array_mut().unwrap() {
        handle.as_object_mut().unwrap().remove("states");
    }
    let body = format!(
        "keyedstate-checkpoint 1\n{}\n",
        serde_json::to_string_pretty(&json).unwrap()
    );
    let crc = crc32c::crc32c(body.as_bytes());
    let bytes = format!("{body}crc32c {crc:08x}\n");
    let path = format!("chk-{}/_metadata", metadata.checkpoint_id);
    storage.put_bytes(&path, bytes.as_bytes()).unwrap();
}

#[test]
fn version_1_metadata_without_per_subtask_states_still_restores() {
    for engine in [Engine::RocksDb, Engine::Heap] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let job = TestJob::new(engine, 128, 2);
        job.write_round(0);
        job.write_round(1);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
        let digest = job.digest();
        downgrade_to_version_1(&storage, &metadata);
        let old = load_metadata(storage.as_ref(), metadata.checkpoint_id).unwrap();
        assert_eq!(old.version, 1);
        assert!(old.subtasks.iter().all(|h| h.states.is_empty()));
        for parallelism in [2, 3] {
            let restored = TestJob::restored(engine, &old, &storage, parallelism).unwrap();
            assert_eq!(restored.digest(), digest, "{engine:?} at {parallelism}");
            // Its keys were bincode encodings then: no key type of this version matches them.
            let err = restored.backends[0].set_current_key(&0u64).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
            assert!(err.to_string().contains("metadata version 1 or 2"), "{err}");
        }
    }
}

/// A checkpoint records its keys' codec: a job restored with keys of another type is refused
/// (`i64` keys over `u64` ones would land in other key groups), the same type goes on.
#[test]
fn a_restore_with_keys_of_another_type_is_incompatible() {
    for engine in [Engine::RocksDb, Engine::Heap] {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let job = TestJob::new(engine, 128, 2);
        job.write_round(0);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
        assert_eq!(metadata.key_codec.as_deref(), Some("ks1:u64"));
        assert!(
            metadata
                .subtasks
                .iter()
                .all(|h| h.key_codec.as_deref() == Some("ks1:u64"))
        );
        let restored = TestJob::restored(engine, &metadata, &storage, 3).unwrap();
        for backend in &restored.backends {
            let err = backend.set_current_key(&0i64).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
            assert!(err.to_string().contains("'ks1:u64'"), "{err}");
        }
        let range = restored.backends[0].key_group_range();
        let key = (0u64..)
            .find(|k| {
                let mut bytes = Vec::new();
                codec::encode(k, &mut bytes).unwrap();
                range.contains(MaxParallelism::new(128).unwrap().key_group_of(&bytes))
            })
            .unwrap();
        restored.backends[0].set_current_key(&key).unwrap();
    }
}
