//! The bytes in RocksDB are the ones `docs/formats.md` states: one column family per state, the
//! documented entry keys, framed list elements merged by concatenation.

use keyedstate_core::{
    ListStateDescriptor, MapStateDescriptor, MaxParallelism, ValueStateDescriptor,
};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use rocksdb::{DB, IteratorMode, Options};

fn raw_entries(db: &DB, cf: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let cf = db.cf_handle(cf).expect("column family exists");
    db.iterator_cf(cf, IteratorMode::Start)
        .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect()
}

fn write_and_reopen(max_parallelism: u32) -> (tempfile::TempDir, DB) {
    let dir = tempfile::tempdir().unwrap();
    let max_p = MaxParallelism::new(max_parallelism).unwrap();
    let mut config = RocksDbConfig::new(dir.path().join("db"), max_p, max_p.full_range());
    config.delete_on_close = false;
    let backend = RocksDbBackend::open(config).unwrap();
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("value"))
        .unwrap();
    let list = backend
        .list_state(&ListStateDescriptor::<u64>::new("list"))
        .unwrap();
    let map = backend
        .map_state(&MapStateDescriptor::<String, u64>::new("map"))
        .unwrap();
    backend.set_current_key(&42u64).unwrap();
    value.update(&7).unwrap();
    list.add(&1).unwrap();
    list.add_all(&[2, 300]).unwrap();
    map.put(&"a".to_owned(), &5).unwrap();
    backend.close().unwrap();

    // Reading the raw column families needs the list merge operator only to merge operands;
    // a plain concatenation stands in for it here.
    let mut cf_opts = Options::default();
    cf_opts.set_merge_operator_associative("keyedstate.list-append.v1", |_, existing, ops| {
        let mut out = existing.map(<[u8]>::to_vec).unwrap_or_default();
        ops.iter().for_each(|op| out.extend_from_slice(op));
        Some(out)
    });
    let path = dir.path().join("db").join("db");
    let cfs = DB::list_cf(&Options::default(), &path).unwrap();
    let descriptors = cfs
        .iter()
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, cf_opts.clone()));
    let db = DB::open_cf_descriptors(&Options::default(), &path, descriptors).unwrap();
    (dir, db)
}

#[test]
fn entry_keys_are_the_documented_bytes_at_max_parallelism_128() {
    let (_dir, db) = write_and_reopen(128);
    let mut cfs = DB::list_cf(&Options::default(), db.path()).unwrap();
    cfs.sort();
    assert_eq!(
        cfs,
        vec!["default", "list", "map", "value"],
        "one column family per state"
    );
    assert!(
        raw_entries(&db, "default").is_empty(),
        "the default column family stays unused"
    );
    // `42u64` is `00 00 00 00 00 00 00 2a` (ks1), key group 55 (0x37) at 128.
    let key = [0x37, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0x00];
    let u64_bytes = |v: u64| v.to_be_bytes().to_vec();
    assert_eq!(
        raw_entries(&db, "value"),
        vec![(key.to_vec(), u64_bytes(7))]
    );
    assert_eq!(
        raw_entries(&db, "map"),
        vec![([&key[..], &[0x01, b'a']].concat(), u64_bytes(5))]
    );
    // Elements 1, 2 and 300, each with its length (8).
    let mut elements = Vec::new();
    for v in [1u64, 2, 300] {
        elements.push(0x08);
        elements.extend_from_slice(&v.to_be_bytes());
    }
    assert_eq!(raw_entries(&db, "list"), vec![(key.to_vec(), elements)]);
}

#[test]
fn entry_keys_have_two_byte_key_groups_at_max_parallelism_129() {
    let (_dir, db) = write_and_reopen(129);
    assert_eq!(
        raw_entries(&db, "value"),
        vec![(
            vec![0x00, 0x78, 0x08, 0, 0, 0, 0, 0, 0, 0, 0x2a, 0x00],
            7u64.to_be_bytes().to_vec()
        )]
    );
}
