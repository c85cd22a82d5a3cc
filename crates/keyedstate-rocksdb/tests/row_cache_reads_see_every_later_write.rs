//! An instance opened empty keeps a row cache of point reads from SST files
//! (`RocksDbConfig::row_cache`): reads of compacted state, repeated, are served from it. They
//! must still see every later write (an update, a delete, a list append, a map put or remove),
//! whether that write is in the memtable, in a newer file, or compacted together with the value
//! the cache holds; the same rounds without a row cache are the control.

use keyedstate_core::{
    KeyedStateBackend, ListStateDescriptor, MapStateDescriptor, MaxParallelism,
    ValueStateDescriptor,
};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use std::collections::BTreeMap;

const KEYS: u64 = 300;

#[derive(Default)]
struct Model {
    values: BTreeMap<u64, u64>,
    lists: BTreeMap<u64, Vec<u64>>,
    maps: BTreeMap<u64, BTreeMap<u64, u64>>,
}

fn open(dir: &std::path::Path, row_cache: bool) -> KeyedStateBackend {
    let max_p = MaxParallelism::new(128).unwrap();
    let mut config = RocksDbConfig::new(dir.join("db"), max_p, max_p.full_range());
    config.row_cache = row_cache;
    RocksDbBackend::open(config).unwrap()
}

fn reads_of_compacted_state_see_every_later_write(row_cache: bool) {
    let dir = tempfile::tempdir().unwrap();
    let backend = open(dir.path(), row_cache);
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("value"))
        .unwrap();
    let list = backend
        .list_state(&ListStateDescriptor::<u64>::new("list"))
        .unwrap();
    let map = backend
        .map_state(&MapStateDescriptor::<u64, u64>::new("map"))
        .unwrap();
    let mut model = Model::default();
    let check = |model: &Model, round: u32| {
        // Twice: the second read of a key in a file is the row cache's.
        for _ in 0..2 {
            for key in 0..KEYS {
                backend.set_current_key(&key).unwrap();
                let at = format!("key {key}, round {round}, row cache {row_cache}");
                assert_eq!(
                    value.get().unwrap(),
                    model.values.get(&key).copied(),
                    "{at}"
                );
                let expected = model.lists.get(&key).cloned().unwrap_or_default();
                assert_eq!(list.get().unwrap(), expected, "{at}");
                for user_key in 0..3 {
                    let expected = model.maps.get(&key).and_then(|m| m.get(&user_key)).copied();
                    assert_eq!(map.get(&user_key).unwrap(), expected, "{at}");
                }
            }
        }
    };
    for round in 0..6u32 {
        for key in 0..KEYS {
            backend.set_current_key(&key).unwrap();
            let n = key + u64::from(round);
            match n % 4 {
                0 | 1 => {
                    value.update(&(n * 10)).unwrap();
                    model.values.insert(key, n * 10);
                }
                2 => {
                    value.clear().unwrap();
                    model.values.remove(&key);
                }
                _ => {}
            }
            list.add(&n).unwrap();
            model.lists.entry(key).or_default().push(n);
            let user_key = n % 3;
            if n % 5 == 0 {
                map.remove(&user_key).unwrap();
                model.maps.entry(key).or_default().remove(&user_key);
            } else {
                map.put(&user_key, &n).unwrap();
                model.maps.entry(key).or_default().insert(user_key, n);
            }
        }
        // Some rounds' writes stay in the memtable, others go into files over the values
        // read (and cached) before, and some are compacted with them.
        match round % 3 {
            0 => backend.compact().unwrap(),
            1 => {}
            _ => {
                check(&model, round);
                backend.compact().unwrap();
            }
        }
        check(&model, round);
    }
    backend.close().unwrap();
}

#[test]
fn reads_see_every_later_write_with_a_row_cache() {
    reads_of_compacted_state_see_every_later_write(true);
}

#[test]
fn reads_see_every_later_write_without_a_row_cache() {
    reads_of_compacted_state_see_every_later_write(false);
}
