//! Restore with rescale: every entry of the checkpoint lands in exactly the subtask owning its key
//! group, on both backends, from incremental and from full sources, scaling out and in, at max
//! parallelism 128 (1-byte prefixes) and 32768 (2-byte prefixes).

mod common;

use common::{TestJob, directory_coordinator, entries_in_own_key_groups};
use keyedstate::job::Engine;
use keyedstate::{SnapshotKind, StateDigest};

const SCALINGS: [(u32, u32); 6] = [(1, 2), (2, 3), (3, 7), (2, 1), (4, 3), (7, 2)];

fn rescale_all(source: Engine, kind: SnapshotKind, max_parallelism: u32) {
    for (from, to) in SCALINGS {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let job = TestJob::new(source, max_parallelism, from);
        for round in 0..3 {
            job.write_round(round);
        }
        let metadata = job.checkpoint(&mut coordinator, kind);
        let digest: StateDigest = job.digest();
        for target in [Engine::RocksDb, Engine::Heap] {
            let what =
                format!("{source:?} {kind:?} at {max_parallelism}: {from} -> {to} into {target:?}");
            let restored = TestJob::restored(target, &metadata, &storage, to)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(restored.digest(), digest, "{what}");
            let per_subtask = entries_in_own_key_groups(&restored);
            assert_eq!(
                per_subtask.iter().sum::<u64>(),
                digest.entries,
                "{what}: each entry once"
            );
            for key in 0..common::KEYS {
                assert_eq!(
                    restored.value_of(key),
                    job.value_of(key),
                    "{what}: key {key}"
                );
            }
        }
    }
}

#[test]
fn rescale_from_rocksdb_incremental_at_128() {
    rescale_all(Engine::RocksDb, SnapshotKind::Incremental, 128);
}

#[test]
fn rescale_from_rocksdb_incremental_at_32768() {
    rescale_all(Engine::RocksDb, SnapshotKind::Incremental, 32_768);
}

#[test]
fn rescale_from_rocksdb_full_at_128() {
    rescale_all(Engine::RocksDb, SnapshotKind::Full, 128);
}

#[test]
fn rescale_from_rocksdb_full_at_32768() {
    rescale_all(Engine::RocksDb, SnapshotKind::Full, 32_768);
}

#[test]
fn rescale_from_heap_full_at_128() {
    rescale_all(Engine::Heap, SnapshotKind::Full, 128);
}

#[test]
fn rescale_from_heap_full_at_32768() {
    rescale_all(Engine::Heap, SnapshotKind::Full, 32_768);
}

#[test]
fn write_batches_restore_what_ingestion_does() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::RocksDb, 128, 3);
    job.write_round(0);
    job.write_round(1);
    let metadata = job.checkpoint(&mut coordinator, SnapshotKind::Incremental);
    let work = tempfile::tempdir().unwrap();
    let mut digest = StateDigest::default();
    for index in 0..2 {
        let range = metadata
            .max_parallelism
            .range_for_subtask(2, index)
            .unwrap();
        let mut config = keyedstate::rocksdb::RocksDbConfig::new(
            work.path().join(format!("s{index}")),
            metadata.max_parallelism,
            range,
        );
        config.rescale_method = keyedstate::rocksdb::RescaleMethod::WriteBatch;
        let backend =
            keyedstate::rocksdb::RocksDbBackend::restore(config, &metadata, &storage).unwrap();
        digest.merge(backend.digest().unwrap());
    }
    assert_eq!(digest, job.digest());
}
