//! `_metadata` that names a path outside the checkpoint root (`..`, an absolute path, a symlink
//! out) is refused, even with a valid checksum.

mod common;

use common::TestJob;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, DirectoryStorage, SnapshotHandle,
    load_latest,
};
use keyedstate::job::Engine;
use keyedstate::{ErrorKind, SnapshotKind};
use std::sync::Arc;

/// A root with one full checkpoint, and a function rewriting its metadata's file path.
fn checkpoint_with_path(path: &str, make_symlink: bool) -> keyedstate::Error {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(&root).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    let job = TestJob::new(Engine::Heap, 128, 1);
    job.write_round(0);
    let mut metadata: CheckpointMetadata = job.checkpoint(&mut coordinator, SnapshotKind::Full);
    let SnapshotHandle::Full { file } = &mut metadata.subtasks[0].snapshot else {
        unreachable!()
    };
    let original = root.join(&file.path);
    // The file outside the root holds exactly the snapshot's bytes: only its place is wrong.
    let outside = dir.path().join("outside.snapshot");
    std::fs::copy(&original, &outside).unwrap();
    if make_symlink {
        std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(path)).unwrap();
    }
    file.path = path.replace("OUTSIDE", outside.to_str().unwrap());
    // Re-encoding gives the tampered document a valid checksum.
    std::fs::write(
        root.join(format!("chk-{}/_metadata", metadata.checkpoint_id)),
        metadata.encode().unwrap(),
    )
    .unwrap();
    match load_latest(storage.as_ref()) {
        Err(e) => e,
        Ok(metadata) => TestJob::restored(Engine::Heap, &metadata, &storage, 1)
            .err()
            .expect("restore refused"),
    }
}

#[test]
fn dot_dot_paths_are_refused() {
    let err = checkpoint_with_path("chk-1/../../outside.snapshot", false);
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(
        err.to_string().contains("leaves the checkpoint root"),
        "{err}"
    );
}

#[test]
fn absolute_paths_are_refused() {
    let err = checkpoint_with_path("OUTSIDE", false);
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(
        err.to_string().contains("leaves the checkpoint root"),
        "{err}"
    );
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let err = checkpoint_with_path("shared/link.snapshot", true);
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(
        err.to_string().contains("outside the checkpoint root"),
        "{err}"
    );
}
