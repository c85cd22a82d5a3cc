//! Two writers racing for one checkpoint id of a root (a split brain): the first `_metadata`
//! wins and stays whole, the second writer gets a clear error and leaves no file behind, on a
//! directory, in memory and on an object store (the S3 server's case is in
//! `checkpoints_on_s3.rs`).

mod common;

use keyedstate::SnapshotKind;
use keyedstate::checkpoint::{CheckpointStorage, DirectoryStorage, MemoryStorage};
use keyedstate::job::Engine;
use keyedstate_object_store::ObjectStoreStorage;
use std::sync::Arc;

const CASES: [(Engine, SnapshotKind); 3] = [
    (Engine::RocksDb, SnapshotKind::Incremental),
    (Engine::RocksDb, SnapshotKind::Full),
    (Engine::Heap, SnapshotKind::Full),
];

fn storages(dir: &std::path::Path, case: usize) -> Vec<Arc<dyn CheckpointStorage>> {
    vec![
        Arc::new(DirectoryStorage::new(dir.join(format!("root-{case}"))).unwrap()),
        Arc::new(MemoryStorage::new()),
        Arc::new(ObjectStoreStorage::from_url(&format!("memory://bucket/race-{case}")).unwrap()),
    ]
}

#[test]
fn the_second_writer_of_a_checkpoint_id_is_refused_and_removes_only_its_files() {
    let dir = tempfile::tempdir().unwrap();
    for (case, (engine, kind)) in CASES.into_iter().enumerate() {
        for storage in storages(dir.path(), case) {
            common::race_for_one_checkpoint_id(engine, kind, &storage, false);
        }
    }
}

#[test]
fn garbage_collection_removes_the_files_of_a_writer_that_lost_and_died() {
    let dir = tempfile::tempdir().unwrap();
    for (case, (engine, kind)) in CASES.into_iter().enumerate() {
        for storage in storages(dir.path(), case + 10) {
            common::race_for_one_checkpoint_id(engine, kind, &storage, true);
        }
    }
}
