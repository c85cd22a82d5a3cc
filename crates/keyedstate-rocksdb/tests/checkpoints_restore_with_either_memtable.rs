//! The memtable is a working-directory choice, not part of the checkpoint: an incremental
//! checkpoint taken with one memtable restores with the other (the prefix extractor RocksDB
//! records in OPTIONS is not needed to read the files), map iteration and key listing included.

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, DirectoryStorage};
use keyedstate_core::{
    MapStateDescriptor, MaxParallelism, SnapshotKind, ValueStateDescriptor, job,
};
use keyedstate_rocksdb::{Memtable, RocksDbBackend, RocksDbConfig};
use std::sync::Arc;

#[test]
fn an_incremental_checkpoint_restores_with_the_other_memtable() {
    let max_p = MaxParallelism::new(128).unwrap();
    let range = max_p.full_range();
    for (written, read) in [
        (Memtable::KeyHash, Memtable::SkipList),
        (Memtable::SkipList, Memtable::KeyHash),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = RocksDbConfig::new(dir.path().join("a"), max_p, range);
        config.memtable = written;
        let backend = RocksDbBackend::open(config).unwrap();
        let value = backend
            .value_state(&ValueStateDescriptor::<u64>::new("v"))
            .unwrap();
        let map = backend
            .map_state(&MapStateDescriptor::<u32, u64>::new("m"))
            .unwrap();
        for key in 0..200u64 {
            backend.set_current_key(&key).unwrap();
            value.update(&(key * 3)).unwrap();
            for user_key in [3u32, 1, 2] {
                map.put(&user_key, &key).unwrap();
            }
        }
        let storage: Arc<dyn CheckpointStorage> =
            Arc::new(DirectoryStorage::new(dir.path().join("checkpoints")).unwrap());
        let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
        let metadata = job::checkpoint(
            std::slice::from_ref(&backend),
            &mut coordinator,
            SnapshotKind::Incremental,
        )
        .unwrap();
        let digest = backend.digest().unwrap();
        backend.close().unwrap();

        let mut config = RocksDbConfig::new(dir.path().join("b"), max_p, range);
        config.memtable = read;
        let restored = RocksDbBackend::restore(config, &metadata, &storage).unwrap();
        assert_eq!(
            restored.digest().unwrap(),
            digest,
            "{written:?} -> {read:?}"
        );
        let value = restored
            .value_state(&ValueStateDescriptor::<u64>::new("v"))
            .unwrap();
        let map = restored
            .map_state(&MapStateDescriptor::<u32, u64>::new("m"))
            .unwrap();
        restored.set_current_key(&7u64).unwrap();
        assert_eq!(value.get().unwrap(), Some(21));
        let entries = map.entries().unwrap();
        assert_eq!(entries, vec![(1, 7), (2, 7), (3, 7)]);
        // Writes after the restore, then another read of the map through the new memtable.
        map.put(&0, &70).unwrap();
        assert_eq!(map.keys().unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(restored.keys::<u64, _>("v", &()).unwrap().len(), 200);
        restored.close().unwrap();
    }
}
