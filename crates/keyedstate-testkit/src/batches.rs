//! The batch calls: results equal to the per-record calls, in order, repeated keys included;
//! the current key untouched; bad keys refused before anything is written; TTL as per record.

use crate::fixture::{Factory, full};
use keyedstate_core::{
    ErrorKind, KeyGroupRange, ManualClock, MaxParallelism, StateTtlConfig, ValueStateDescriptor,
};
use std::time::Duration;

pub fn value_batches_match_per_record_calls(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    i.backend.set_current_key(&5u64).unwrap();
    value.update(&50).unwrap();
    // Later writes of a key win, as they would one record at a time.
    value
        .update_batch(&[(1u64, 10), (2, 20), (1, 11), (700, 7)])
        .unwrap();
    assert_eq!(i.backend.current_key::<u64>().unwrap(), Some(5));
    assert_eq!(
        value.get().unwrap(),
        Some(50),
        "the current key is untouched"
    );
    let keys = [1u64, 2, 3, 1, 700, 5];
    let batched = value.get_batch(&keys).unwrap();
    let per_record: Vec<Option<u64>> = keys
        .iter()
        .map(|k| {
            i.backend.set_current_key(k).unwrap();
            value.get().unwrap()
        })
        .collect();
    assert_eq!(batched, per_record);
    assert_eq!(
        batched,
        vec![Some(11), Some(20), None, Some(11), Some(7), Some(50)]
    );
    assert_eq!(
        value.get_batch::<u64>(&[]).unwrap(),
        Vec::<Option<u64>>::new()
    );

    // The handle's namespace applies to the whole batch.
    let mut windowed = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("w"))
        .unwrap();
    windowed.set_namespace(&9u32).unwrap();
    windowed.update_batch(&[(1u64, 90)]).unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    assert_eq!(windowed.get().unwrap(), Some(90));
    windowed.set_namespace(&()).unwrap();
    assert_eq!(windowed.get_batch(&[1u64]).unwrap(), vec![None]);

    // A key of another type fails the whole batch.
    let err = value.update_batch(&[(1i64, 1)]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState, "{err}");
    assert_eq!(value.get_batch(&[1u64]).unwrap(), vec![Some(11)]);
}

/// A batch with a key outside the backend's key groups writes nothing.
pub fn a_batch_with_a_foreign_key_writes_nothing(factory: &Factory) {
    let max_p = MaxParallelism::new(128).unwrap();
    let range = KeyGroupRange::new(0, 63, max_p).unwrap();
    let i = factory(max_p, range, ManualClock::new(0));
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let key_group = |k: u64| max_p.key_group_of(&k.to_be_bytes());
    let inside = (0u64..).find(|&k| range.contains(key_group(k))).unwrap();
    let outside = (0u64..).find(|&k| !range.contains(key_group(k))).unwrap();
    let err = value
        .update_batch(&[(inside, 1), (outside, 2)])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(value.get_batch(&[inside]).unwrap(), vec![None]);
    assert!(value.get_batch(&[outside]).is_err());
}

/// With a TTL, a batch read judges each value as a read of it would: expired values are not
/// returned and are removed.
pub fn value_batches_apply_the_ttl(factory: &Factory) {
    let clock = ManualClock::new(1000);
    let max_p = MaxParallelism::new(128).unwrap();
    let i = factory(max_p, max_p.full_range(), clock.clone());
    let ttl = StateTtlConfig::new(Duration::from_millis(100));
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    value.update_batch(&[(1u64, 1), (2, 2)]).unwrap();
    clock.advance(Duration::from_millis(60));
    value.update_batch(&[(2u64, 22)]).unwrap();
    clock.advance(Duration::from_millis(60));
    assert_eq!(value.get_batch(&[1u64, 2]).unwrap(), vec![None, Some(22)]);
    assert_eq!(crate::fixture::stored_entries(&i.backend, "v"), 1);
}

pub fn list_and_map_batches_match_per_record_calls(factory: &Factory) {
    let i = full(factory);
    let list = i
        .backend
        .list_state(&keyedstate_core::ListStateDescriptor::<u32>::new("l"))
        .unwrap();
    let map = i
        .backend
        .map_state(&keyedstate_core::MapStateDescriptor::<u16, String>::new(
            "m",
        ))
        .unwrap();
    i.backend.set_current_key(&9u64).unwrap();
    list.add(&90).unwrap();
    map.put(&1, &"nine".to_owned()).unwrap();
    // Appends in order, a key twice included; later puts of one map entry win.
    list.add_batch(&[(1u64, 1), (2, 2), (1, 11), (9, 91)])
        .unwrap();
    map.put_batch(&[
        (1u64, 1u16, "a".to_owned()),
        (1, 2, "b".to_owned()),
        (2, 1, "c".to_owned()),
        (1, 1, "a2".to_owned()),
    ])
    .unwrap();
    assert_eq!(i.backend.current_key::<u64>().unwrap(), Some(9));
    let keys = [1u64, 2, 3, 9, 1];
    let lists = list.get_batch(&keys).unwrap();
    let per_record: Vec<Vec<u32>> = keys
        .iter()
        .map(|k| {
            i.backend.set_current_key(k).unwrap();
            list.get().unwrap()
        })
        .collect();
    assert_eq!(lists, per_record);
    assert_eq!(lists[0], vec![1, 11]);
    assert_eq!(lists[3], vec![90, 91]);
    // An entry twice included; (9, 1) was put per record (RocksDB: still in the write buffer).
    let lookups = [(1u64, 1u16), (1, 2), (2, 1), (2, 2), (9, 1), (3, 1), (1, 1)];
    let values = map.get_batch(&lookups).unwrap();
    let per_record: Vec<Option<String>> = lookups
        .iter()
        .map(|(k, uk)| {
            i.backend.set_current_key(k).unwrap();
            map.get(uk).unwrap()
        })
        .collect();
    assert_eq!(values, per_record);
    assert_eq!(
        values,
        vec![
            Some("a2".to_owned()),
            Some("b".to_owned()),
            Some("c".to_owned()),
            None,
            Some("nine".to_owned()),
            None,
            Some("a2".to_owned())
        ]
    );
}
