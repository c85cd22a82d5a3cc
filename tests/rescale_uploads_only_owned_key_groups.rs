//! After a clip, a RocksDB instance holds only its own key groups on disk, not behind range
//! tombstones: rescaling one subtask's checkpoint out to 7 and checkpointing the 7 writes about
//! the input's bytes in all, not 7 times them.

use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage,
};
use keyedstate::job::{self, Engine};
use keyedstate::{MaxParallelism, SnapshotKind, ValueStateDescriptor};
use keyedstate_testkit::model::Rng;
use std::sync::Arc;

fn stored_bytes(metadata: &CheckpointMetadata) -> u64 {
    metadata.files().map(|f| f.size).sum()
}

#[test]
fn rescale_one_to_seven_writes_at_most_the_input_bytes_and_a_tenth() {
    let dir = tempfile::tempdir().unwrap();
    let max_p = MaxParallelism::new(128).unwrap();
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("in")).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let backend = job::open_subtask(Engine::RocksDb, max_p, 1, 0, &dir.path().join("w1")).unwrap();
    let value = backend
        .value_state(&ValueStateDescriptor::<Vec<u8>>::new("payload"))
        .unwrap();
    // Incompressible values, so that the files' sizes follow their entries.
    let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
    let mut bytes = vec![0u8; 64];
    for key in 0..40_000u64 {
        backend.set_current_key(&key).unwrap();
        rng.fill(&mut bytes);
        value.update(&bytes).unwrap();
    }
    // In SST files, as the seven instances' checkpoints hold theirs (a log of the same entries
    // is smaller than SST files with their index and filter blocks).
    backend.compact().unwrap();
    let input = job::checkpoint(
        std::slice::from_ref(&backend),
        &mut coordinator,
        SnapshotKind::Incremental,
    )
    .unwrap();
    let out: Arc<dyn CheckpointStorage> =
        Arc::new(DirectoryStorage::new(dir.path().join("out")).unwrap());
    let mut out_coordinator = CheckpointCoordinator::open(out.clone(), 1).unwrap();
    let restored: Vec<_> = (0..7)
        .map(|i| {
            job::restore_subtask(
                Engine::RocksDb,
                &input,
                &storage,
                7,
                i,
                &dir.path().join("w7"),
            )
            .unwrap()
        })
        .collect();
    let output =
        job::checkpoint(&restored, &mut out_coordinator, SnapshotKind::Incremental).unwrap();
    let (read, wrote) = (stored_bytes(&input), stored_bytes(&output));
    eprintln!(
        "rescale 1 -> 7: read {read} bytes, wrote {wrote} bytes ({:.3}x)",
        wrote as f64 / read as f64
    );
    assert!(
        wrote as f64 <= 1.1 * read as f64,
        "rescale 1 -> 7 wrote {wrote} bytes for {read} bytes read ({:.2}x)",
        wrote as f64 / read as f64
    );
    assert_eq!(job::digest(&restored).unwrap(), backend.digest().unwrap());
}
