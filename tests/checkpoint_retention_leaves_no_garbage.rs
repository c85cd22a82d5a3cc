//! 100 incremental checkpoints at `retained` = 2 leave exactly the files the two retained ones
//! reference, and both restore the state they acknowledged.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::SnapshotKind;
use keyedstate::checkpoint::load_metadata;
use keyedstate::job::Engine;
use std::collections::BTreeSet;

#[test]
fn hundred_checkpoints_at_retained_two_leave_no_unreferenced_file() {
    let (_dir, storage, mut coordinator) = directory_coordinator(2);
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    let mut digests = Vec::new();
    for round in 0..100 {
        job.write_round(round);
        let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
        digests.push((metadata.checkpoint_id, job.digest()));
    }
    let retained: Vec<u64> = coordinator.completed().map(|m| m.checkpoint_id).collect();
    assert_eq!(retained, vec![99, 100]);
    let dirs: Vec<u64> = storage
        .checkpoint_dirs()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(dirs, retained, "older checkpoint directories are gone");
    let referenced: BTreeSet<String> = coordinator
        .completed()
        .flat_map(|m| m.files())
        .filter(|f| f.is_shared())
        .map(|f| f.path.clone())
        .collect();
    let present: BTreeSet<String> = storage.list_files("shared").unwrap().into_iter().collect();
    assert_eq!(
        present, referenced,
        "shared/ holds exactly what the retained checkpoints reference"
    );
    for (id, digest) in digests.iter().filter(|(id, _)| retained.contains(id)) {
        let metadata = load_metadata(storage.as_ref(), *id).unwrap();
        let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
        assert_eq!(&restored.digest(), digest, "checkpoint {id}");
    }
}
