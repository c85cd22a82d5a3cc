//! A full checkpoint between two incremental ones: the full one holds no SST files, and once it
//! completes retention may drop the incremental checkpoint before it. The next incremental
//! checkpoint must then upload its SST files again instead of referencing the dropped ones.
//! (Found by the randomized job test, seed 122: the second incremental checkpoint referenced
//! files retention had deleted.)

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::SnapshotKind;
use keyedstate::job::Engine;

#[test]
fn incremental_checkpoint_after_a_full_one_restores_at_retained_one() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    job.write_round(0);
    job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    job.write_round(1);
    job.checkpoint(&mut coordinator, SnapshotKind::Full);
    job.write_round(2);
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    for file in metadata.files() {
        storage
            .verify(file)
            .unwrap_or_else(|e| panic!("checkpoint {}: {e}", metadata.checkpoint_id));
    }
    let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 3).unwrap();
    assert_eq!(restored.digest(), job.digest());
}
