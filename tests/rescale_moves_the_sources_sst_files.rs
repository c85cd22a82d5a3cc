//! Restore with rescale moves the other instances' own SST files in (issue 15): a scale-in
//! links every file of every source into the new instance unchanged, versions of a key spread
//! over several levels resolve to the newest, and the instance goes on taking writes and
//! compactions over the moved files; at key-group edges (1- and 2-byte prefixes) the sources
//! are clipped first and nothing outside the new range arrives.

mod common;

use common::{KEYS, TestJob, directory_coordinator, entries_in_own_key_groups};
use keyedstate::job::{self, Engine};
use keyedstate::{SnapshotKind, ValueStateDescriptor};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The inodes of the `.sst` files below `dir`.
fn sst_inodes(dir: &Path) -> BTreeSet<u64> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            out.extend(sst_inodes(&entry.path()));
        } else if entry.file_name().to_string_lossy().ends_with(".sst") {
            out.insert(entry.metadata().unwrap().ino());
        }
    }
    out
}

/// A job of `parallelism` RocksDB subtasks whose instances hold each key in several versions on
/// different levels: round 0 compacted to the last level, then rounds 1 to `l0_files` (updates
/// and deletions) each followed by a checkpoint, which holds them in its write-ahead log (a
/// restore replays the log into L0 files). Returns the job and the last checkpoint.
fn layered_job(
    max_parallelism: u32,
    parallelism: u32,
    l0_files: u64,
) -> (
    TestJob,
    tempfile::TempDir,
    std::sync::Arc<dyn keyedstate::checkpoint::CheckpointStorage>,
    keyedstate::checkpoint::CheckpointMetadata,
) {
    let (dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::RocksDb, max_parallelism, parallelism);
    job.write_round(0);
    for backend in &job.backends {
        backend.compact().unwrap();
    }
    let mut metadata = None;
    for round in 1..=l0_files {
        job.write_round(round);
        metadata = Some(job.checkpoint(&mut coordinator, SnapshotKind::Incremental));
    }
    (
        job,
        dir,
        storage,
        metadata.expect("at least one checkpoint"),
    )
}

#[test]
fn a_scale_in_links_every_source_file_and_the_newest_versions_win() {
    // Two instances of one L0 file each: too few L0 files in the new instance for RocksDB to
    // start a compaction of its own, which would rewrite files after the restore.
    let (job, dir, storage, metadata) = layered_job(128, 2, 1);
    let work = tempfile::tempdir_in(dir.path()).unwrap();
    let restored =
        job::restore_subtask(Engine::RocksDb, &metadata, &storage, 1, 0, work.path()).unwrap();
    assert_eq!(restored.digest().unwrap(), job.digest());
    // Every SST of the new instance is a checkpoint file itself, but for those RocksDB wrote
    // when it replayed each source's log (the writes since its last flush): at most one per
    // source and column family (value, list, map, count). Nothing else was rewritten.
    let checkpoint_files = sst_inodes(&dir.path().join("checkpoints/shared"));
    let instance_files = sst_inodes(&work.path().join("subtask-0/db"));
    let replayed = instance_files.difference(&checkpoint_files).count();
    assert!(instance_files.len() > replayed, "no file was moved");
    assert!(
        replayed <= 2 * 4,
        "{replayed} of {} files rewritten",
        instance_files.len()
    );
    // Writes after the move are newer than every moved version, before and after compaction.
    let value = restored
        .value_state(&ValueStateDescriptor::<u64>::new("value"))
        .unwrap();
    for key in 0..KEYS {
        restored.set_current_key(&key).unwrap();
        value.update(&(key + 1_000_000)).unwrap();
    }
    for compacted in [false, true] {
        if compacted {
            restored.compact().unwrap();
        }
        for key in 0..KEYS {
            restored.set_current_key(&key).unwrap();
            assert_eq!(value.get().unwrap(), Some(key + 1_000_000), "key {key}");
        }
    }
    restored.close().unwrap();
}

#[test]
fn rescales_across_key_group_edges_keep_every_entry_once() {
    for max_parallelism in [128, 1024] {
        for (from, to) in [(2, 3), (3, 2), (1, 4), (4, 1)] {
            let (job, _dir, storage, metadata) = layered_job(max_parallelism, from, 3);
            let what = format!("{max_parallelism}: {from} -> {to}");
            let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, to).unwrap();
            let per_subtask = entries_in_own_key_groups(&restored);
            assert_eq!(restored.digest(), job.digest(), "{what}");
            assert_eq!(
                per_subtask.iter().sum::<u64>(),
                job.digest().entries,
                "{what}"
            );
        }
    }
}

#[test]
fn a_checkpoint_of_a_rescaled_job_rescales_again() {
    let (job, _dir, storage, metadata) = layered_job(128, 3, 2);
    // The job restored at 2 (its instances clipped and filled with moved files) goes on.
    let rescaled = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
    assert_eq!(rescaled.digest(), job.digest());
    rescaled.write_round(7);
    let (_dir2, storage2, mut coordinator2) = directory_coordinator(1);
    let second = rescaled.checkpoint(&mut coordinator2, SnapshotKind::Incremental);
    for parallelism in [3, 1, 4] {
        let again = TestJob::restored(Engine::RocksDb, &second, &storage2, parallelism).unwrap();
        assert_eq!(again.digest(), rescaled.digest(), "2 -> {parallelism}");
    }
}

#[test]
fn with_an_overlap_threshold_no_handle_is_the_base_and_every_one_is_moved_in() {
    let (job, dir, storage, metadata) = layered_job(128, 2, 2);
    let work = tempfile::tempdir_in(dir.path()).unwrap();
    let mut total = keyedstate::StateDigest::default();
    for index in 0..3 {
        let range = metadata
            .max_parallelism
            .range_for_subtask(3, index)
            .unwrap();
        let mut config = keyedstate::rocksdb::RocksDbConfig::new(
            work.path().join(format!("subtask-{index}")),
            metadata.max_parallelism,
            range,
        );
        // Each new subtask overlaps a third of an old one's key groups or two thirds: never all.
        config.restore_overlap_fraction_threshold = 1.0;
        let backend =
            keyedstate::rocksdb::RocksDbBackend::restore(config, &metadata, &storage).unwrap();
        total.merge(backend.digest().unwrap());
        backend.close().unwrap();
    }
    assert_eq!(total, job.digest());
}
