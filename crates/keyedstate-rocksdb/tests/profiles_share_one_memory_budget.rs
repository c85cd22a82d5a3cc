//! Every predefined options profile opens and works, and instances given one memory budget
//! charge their memtables to one shared cache.

use keyedstate_core::{ErrorKind, ListStateDescriptor, MaxParallelism, ValueStateDescriptor};
use keyedstate_rocksdb::{OptionsProfile, RocksDbBackend, RocksDbConfig, SharedMemory};

fn config(dir: &std::path::Path, name: &str, memory: &SharedMemory) -> RocksDbConfig {
    let max_p = MaxParallelism::new(128).unwrap();
    let mut config = RocksDbConfig::new(dir.join(name), max_p, max_p.full_range());
    config.memory = memory.clone();
    config
}

#[test]
fn every_profile_opens_and_stores_state() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SharedMemory::new(32 << 20).unwrap();
    for profile in OptionsProfile::ALL {
        assert_eq!(OptionsProfile::from_name(profile.name()), Some(profile));
        let mut config = config(dir.path(), profile.name(), &memory);
        config.profile = profile;
        let backend = RocksDbBackend::open(config).unwrap();
        let list = backend
            .list_state(&ListStateDescriptor::<u32>::new("l"))
            .unwrap();
        backend.set_current_key(&1u8).unwrap();
        list.add_all(&[1, 2, 3]).unwrap();
        assert_eq!(
            list.get().unwrap(),
            vec![1, 2, 3],
            "profile {}",
            profile.name()
        );
        backend.close().unwrap();
        assert!(
            !dir.path().join(profile.name()).exists(),
            "the working directory is removed on close"
        );
    }
}

#[test]
fn instances_share_one_memory_budget() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SharedMemory::new(64 << 20).unwrap();
    assert_eq!(memory.memtable_usage(), 0);
    let a = RocksDbBackend::open(config(dir.path(), "a", &memory)).unwrap();
    let b = RocksDbBackend::open(config(dir.path(), "b", &memory)).unwrap();
    for backend in [&a, &b] {
        let value = backend
            .value_state(&ValueStateDescriptor::<Vec<u8>>::new("v"))
            .unwrap();
        for key in 0u32..200 {
            backend.set_current_key(&key).unwrap();
            value.update(&vec![7u8; 1000]).unwrap();
        }
    }
    let after_both = memory.memtable_usage();
    assert!(
        after_both >= 400_000,
        "both instances' memtables are counted: {after_both}"
    );
    assert!(
        memory.cache_usage() >= after_both,
        "memtables are charged to the shared cache"
    );
}

#[test]
fn a_working_directory_holding_a_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SharedMemory::new(16 << 20).unwrap();
    let mut first = config(dir.path(), "db", &memory);
    first.delete_on_close = false;
    RocksDbBackend::open(first).unwrap().close().unwrap();
    let err = RocksDbBackend::open(config(dir.path(), "db", &memory))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("already holds"), "{err}");
    assert_eq!(
        SharedMemory::new(1 << 20).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn metrics_report_sst_memtable_and_cache_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let memory = SharedMemory::new(32 << 20).unwrap();
    let backend = RocksDbBackend::open(config(dir.path(), "m", &memory)).unwrap();
    let value = backend
        .value_state(&ValueStateDescriptor::<Vec<u8>>::new("v"))
        .unwrap();
    for key in 0u32..500 {
        backend.set_current_key(&key).unwrap();
        value.update(&vec![1u8; 200]).unwrap();
    }
    let before = backend.metrics().unwrap();
    assert!(before.memtable_bytes.unwrap() > 100_000, "{before:?}");
    assert_eq!(before.sst_bytes, Some(0));
    backend.compact().unwrap();
    let after = backend.metrics().unwrap();
    assert!(after.sst_bytes.unwrap() > 0, "{after:?}");
    assert!(after.block_cache_bytes.is_some());
    assert_eq!(after.states[0].estimated_entries, 500);
}
