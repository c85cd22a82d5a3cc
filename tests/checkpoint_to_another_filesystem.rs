//! A checkpoint root on another filesystem than the RocksDB instance (as NFS is): hard links fail
//! with EXDEV, so files are copied, and the checkpoint restores.

mod common;

use common::TestJob;
use keyedstate::SnapshotKind;
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate::job::Engine;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;

#[test]
fn checkpoints_on_tmpfs_are_copies_and_restore() {
    let shm = std::path::Path::new("/dev/shm");
    let work = tempfile::tempdir().unwrap();
    assert_ne!(
        std::fs::metadata(shm).unwrap().dev(),
        std::fs::metadata(work.path()).unwrap().dev(),
        "/dev/shm must be another filesystem than the temporary directory for this test"
    );
    let root = tempfile::tempdir_in(shm).unwrap();
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(root.path()).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    job.write_round(0);
    job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    job.write_round(1);
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    for file in metadata.files().filter(|f| f.is_shared()) {
        let links = std::fs::metadata(root.path().join(&file.path))
            .unwrap()
            .nlink();
        assert_eq!(
            links, 1,
            "{} is a copy, not a hard link into the instance",
            file.path
        );
    }
    let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
    assert_eq!(restored.digest(), job.digest());
}
