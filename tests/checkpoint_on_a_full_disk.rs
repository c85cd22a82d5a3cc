//! A full disk while writing a checkpoint fails that checkpoint cleanly: the earlier one stays
//! intact and restorable, nothing of the failed one is left, and the next checkpoint succeeds
//! once space is free. Needs root (it mounts a small tmpfs).

mod common;

use common::TestJob;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, load_latest,
};
use keyedstate::job::{self, Engine};
use keyedstate::{ErrorKind, SnapshotKind, ValueStateDescriptor};
use std::process::Command;
use std::sync::Arc;

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &std::path::Path, size: &str, remount: bool) {
    let options = if remount {
        format!("remount,size={size}")
    } else {
        format!("size={size}")
    };
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "mount -o {options} {} failed: this test needs root",
        dir.display()
    );
}

/// Adds about `bytes` of incompressible state.
fn add_bulk(job: &TestJob, bytes: usize) {
    let mut rng = keyedstate_testkit::model::Rng::new(0x1234_5678);
    for key in 0..(bytes / 10_000) as u64 {
        let backend = job.backend_of(key);
        let bulk = backend
            .value_state(&ValueStateDescriptor::<Vec<u8>>::new("bulk"))
            .unwrap();
        backend.set_current_key(&key).unwrap();
        let mut value = vec![0u8; 10_000];
        rng.fill(&mut value);
        bulk.update(&value).unwrap();
    }
}

#[test]
fn a_full_disk_fails_one_checkpoint_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    mount_tmpfs(&root, "2m", false);
    let _mount = Mount(root.clone());
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    job.write_round(0);
    let first = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    let first_digest = job.digest();

    add_bulk(&job, 4 << 20);
    let err =
        job::checkpoint(&job.backends, &mut coordinator, SnapshotKind::Incremental).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(err.to_string().contains("No space left"), "{err}");
    assert_eq!(
        load_latest(storage.as_ref()).unwrap(),
        first,
        "the first checkpoint is still the latest"
    );
    let dirs: Vec<u64> = storage
        .checkpoint_dirs()
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        dirs,
        vec![first.checkpoint_id],
        "nothing of the failed checkpoint is left"
    );
    let mut referenced: Vec<String> = first
        .files()
        .filter(|f| f.is_shared())
        .map(|f| f.path.clone())
        .collect();
    referenced.sort();
    assert_eq!(
        storage.list_files("shared").unwrap(),
        referenced,
        "its uploads are removed"
    );
    let restored = TestJob::restored(Engine::RocksDb, &first, &storage, 2).unwrap();
    assert_eq!(restored.digest(), first_digest);

    mount_tmpfs(&root, "64m", true);
    let next = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    let restored = TestJob::restored(Engine::RocksDb, &next, &storage, 2).unwrap();
    assert_eq!(restored.digest(), job.digest());
}
