//! A flipped bit, a truncation or a missing file, in every kind of checkpoint file, is detected
//! at restore with an error naming the file; nothing is restored from it.

mod common;

use common::{TestJob, copy_tree};
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointStorage, DirectoryStorage, load_latest,
};
use keyedstate::job::Engine;
use keyedstate::{ErrorKind, SnapshotKind};
use std::path::Path;
use std::sync::Arc;

enum Damage {
    FlipBit,
    Truncate,
    Delete,
}

fn damage(path: &Path, how: &Damage) {
    match how {
        Damage::FlipBit => {
            let mut bytes = std::fs::read(path).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x10;
            std::fs::write(path, bytes).unwrap();
        }
        Damage::Truncate => {
            let bytes = std::fs::read(path).unwrap();
            std::fs::write(path, &bytes[..bytes.len() / 2]).unwrap();
        }
        Damage::Delete => std::fs::remove_file(path).unwrap(),
    }
}

/// Writes a checkpoint with `engine` and `kind`; returns its root and the paths of its files.
fn checkpoint(engine: Engine, kind: SnapshotKind, dir: &Path) -> Vec<String> {
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(dir).unwrap());
    let mut coordinator = CheckpointCoordinator::open(storage, 1).unwrap();
    let job = TestJob::new(engine, 128, 1);
    job.write_round(0);
    // RocksDB: the first round in SST files, the second in the write-ahead log only, so that
    // the checkpoint holds both kinds of file.
    for backend in &job.backends {
        backend.compact().unwrap();
    }
    job.write_round(1);
    let metadata = job.checkpoint(&mut coordinator, kind);
    let mut files: Vec<String> = metadata.files().map(|f| f.path.clone()).collect();
    files.push(format!("chk-{}/_metadata", metadata.checkpoint_id));
    files
}

/// Restores the checkpoint in `root` as `engine` would; the error, if any.
fn restore(engine: Engine, root: &Path) -> Option<keyedstate::Error> {
    let storage: Arc<dyn CheckpointStorage> = Arc::new(DirectoryStorage::new(root).unwrap());
    let metadata = match load_latest(storage.as_ref()) {
        Ok(metadata) => metadata,
        Err(e) => return Some(e),
    };
    TestJob::restored(engine, &metadata, &storage, 1).err()
}

fn every_file_damage_is_detected(engine: Engine, kind: SnapshotKind, kinds_of_file: &[&str]) {
    let original = tempfile::tempdir().unwrap();
    let files = checkpoint(engine, kind, original.path());
    assert!(
        restore(engine, original.path()).is_none(),
        "the undamaged checkpoint restores"
    );
    for wanted in kinds_of_file {
        let path = files
            .iter()
            .find(|f| f.contains(wanted))
            .unwrap_or_else(|| panic!("a {wanted} file in {files:?}"));
        for how in [Damage::FlipBit, Damage::Truncate, Damage::Delete] {
            let copy = tempfile::tempdir().unwrap();
            copy_tree(original.path(), copy.path());
            damage(&copy.path().join(path), &how);
            let err = restore(engine, copy.path())
                .unwrap_or_else(|| panic!("damaged {path} went unnoticed"));
            let expected_kind = if path.ends_with("_metadata") && matches!(how, Damage::Delete) {
                ErrorKind::InvalidArgument // no _metadata: the checkpoint does not exist
            } else {
                ErrorKind::Corruption
            };
            assert_eq!(err.kind(), expected_kind, "{path}: {err}");
            assert!(
                err.to_string().contains(path.as_str())
                    || (path.ends_with("_metadata") && err.to_string().contains("checkpoint")),
                "the error names {path}: {err}"
            );
        }
    }
}

#[test]
fn rocksdb_incremental_files_are_checked() {
    every_file_damage_is_detected(
        Engine::RocksDb,
        SnapshotKind::Incremental,
        &[
            ".sst",
            ".log",
            "MANIFEST-",
            "CURRENT",
            "OPTIONS-",
            "_metadata",
        ],
    );
}

#[test]
fn full_snapshot_files_are_checked() {
    every_file_damage_is_detected(
        Engine::Heap,
        SnapshotKind::Full,
        &[".snapshot", "_metadata"],
    );
    every_file_damage_is_detected(Engine::RocksDb, SnapshotKind::Full, &[".snapshot"]);
}

#[test]
fn a_damaged_metadata_names_itself() {
    let original = tempfile::tempdir().unwrap();
    let files = checkpoint(Engine::Heap, SnapshotKind::Full, original.path());
    let metadata = files.iter().find(|f| f.ends_with("_metadata")).unwrap();
    damage(&original.path().join(metadata), &Damage::FlipBit);
    let err = restore(Engine::Heap, original.path()).unwrap();
    assert_eq!(err.kind(), ErrorKind::Corruption);
    assert!(
        err.to_string()
            .contains(&format!("{metadata}: checksum mismatch")),
        "{err}"
    );
}
