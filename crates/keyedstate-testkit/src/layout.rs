//! Key-group prefixes, edge key groups, empty keys and large values.

use crate::fixture::{Factory, full_at};
use keyedstate_core::codec;
use keyedstate_core::{
    KeyGroupRange, ListStateDescriptor, MapStateDescriptor, MaxParallelism, ValueStateDescriptor,
};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// The key group of a u64 key, computed independently of the backend.
pub fn key_group_of(max_p: MaxParallelism, key: u64) -> u16 {
    let mut bytes = Vec::new();
    codec::encode(&key, &mut bytes).unwrap();
    max_p.key_group_of(&bytes)
}

/// Stores many keys, then checks that a scan reports each with its own key group and value.
fn every_key_reports_its_key_group(factory: &Factory, max_parallelism: u32) {
    let i = full_at(factory, max_parallelism);
    let max_p = MaxParallelism::new(max_parallelism).unwrap();
    let state = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let mut expected = BTreeMap::new();
    for key in 0u64..2_000 {
        i.backend.set_current_key(&key).unwrap();
        assert_eq!(
            i.backend.current_key_group().unwrap(),
            Some(key_group_of(max_p, key))
        );
        state.update(&(key * 3)).unwrap();
        expected.insert(key, key_group_of(max_p, key));
    }
    let mut seen = BTreeMap::new();
    let mut last_group = 0;
    i.backend
        .scan_raw("v", &mut |e| {
            let key: u64 = codec::decode(e.parts.key)?;
            let value: u64 = codec::decode(e.value)?;
            assert_eq!(value, key * 3);
            assert!(
                e.parts.key_group >= last_group,
                "scan is in key-group order"
            );
            last_group = e.parts.key_group;
            seen.insert(key, e.parts.key_group);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    assert_eq!(seen, expected);
    let groups: std::collections::BTreeSet<u16> = expected.values().copied().collect();
    assert!(
        groups.iter().any(|&g| g >= 128) == (max_parallelism > 128),
        "key groups past 127 exist exactly when max parallelism exceeds 128"
    );
}

pub fn one_byte_prefix_at_max_parallelism_128(factory: &Factory) {
    assert_eq!(MaxParallelism::new(128).unwrap().prefix_len(), 1);
    every_key_reports_its_key_group(factory, 128);
}

pub fn two_byte_prefix_at_max_parallelism_129(factory: &Factory) {
    assert_eq!(MaxParallelism::new(129).unwrap().prefix_len(), 2);
    every_key_reports_its_key_group(factory, 129);
}

/// Finds a u64 key in key group `group`.
pub fn key_in_group(max_p: MaxParallelism, group: u16) -> u64 {
    (0u64..).find(|&k| key_group_of(max_p, k) == group).unwrap()
}

pub fn first_and_last_key_group(factory: &Factory) {
    for max_parallelism in [128u32, 129, 32_768] {
        let max_p = MaxParallelism::new(max_parallelism).unwrap();
        let last = (max_parallelism - 1) as u16;
        for group in [0, last] {
            let key = key_in_group(max_p, group);
            let only = KeyGroupRange::new(group, group, max_p).unwrap();
            let i = factory(max_p, only, keyedstate_core::ttl::system_clock());
            let map = i
                .backend
                .map_state(&MapStateDescriptor::<u64, u64>::new("m"))
                .unwrap();
            i.backend.set_current_key(&key).unwrap();
            map.put(&1, &key).unwrap();
            assert_eq!(map.get(&1).unwrap(), Some(key));
            assert_eq!(i.backend.keys::<u64, _>("m", &()).unwrap(), vec![key]);
            let mut groups = Vec::new();
            i.backend
                .scan_raw("m", &mut |e| {
                    groups.push(e.parts.key_group);
                    Ok(ControlFlow::Continue(()))
                })
                .unwrap();
            assert_eq!(groups, vec![group], "max parallelism {max_parallelism}");
        }
    }
}

pub fn empty_keys_are_valid_keys(factory: &Factory) {
    let i = full_at(factory, 128);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u8>::new("v"))
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<(), u8>::new("m"))
        .unwrap();
    // `()` serializes to no bytes at all: the empty key.
    i.backend.set_current_key(&()).unwrap();
    value.update(&1).unwrap();
    map.put(&(), &2).unwrap();
    // The empty string's bytes (`00`, its length), as raw key bytes: the backend's keys are of
    // one type, `()`.
    i.backend.set_current_key_bytes(&[0]).unwrap();
    value.update(&3).unwrap();
    i.backend.set_current_key(&()).unwrap();
    assert_eq!(value.get().unwrap(), Some(1));
    assert_eq!(map.get(&()).unwrap(), Some(2));
    assert_eq!(map.entries().unwrap(), vec![((), 2)]);
    assert_eq!(i.backend.keys::<(), _>("m", &()).unwrap(), vec![()]);
    let mut raw_keys = Vec::new();
    i.backend
        .scan_raw("v", &mut |e| {
            raw_keys.push(e.parts.key.to_vec());
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    raw_keys.sort();
    assert_eq!(
        raw_keys,
        vec![vec![], vec![0]],
        "the empty key and the empty string are two keys"
    );
}

pub fn one_mib_values_roundtrip(factory: &Factory) {
    let i = full_at(factory, 128);
    let big: Vec<u8> = (0..1 << 20).map(|n: u32| (n % 251) as u8).collect();
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<Vec<u8>>::new("v"))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<Vec<u8>>::new("l"))
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u8, Vec<u8>>::new("m"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&big).unwrap();
    list.add(&big).unwrap();
    list.add(&big).unwrap();
    map.put(&0, &big).unwrap();
    assert_eq!(value.get().unwrap().as_ref(), Some(&big));
    assert_eq!(list.get().unwrap(), vec![big.clone(), big.clone()]);
    assert_eq!(map.get(&0).unwrap().as_ref(), Some(&big));
}

/// `u64` and `i64` keys are placed without the serializer (`set_current_key`'s fast path): the
/// entry key must be the one the serialized bytes give, in the void namespace and another, one
/// key at a time and in a batch, at both key-group prefix lengths.
pub fn eight_byte_keys_have_the_entry_keys_of_their_serialized_bytes(factory: &Factory) {
    for max_parallelism in [128, 129] {
        let i = full_at(factory, max_parallelism);
        let mut windowed = i
            .backend
            .value_state(&ValueStateDescriptor::<u64>::new("w"))
            .unwrap();
        windowed.set_namespace(&3u8).unwrap();
        let plain = i
            .backend
            .value_state(&ValueStateDescriptor::<u64>::new("v"))
            .unwrap();
        for key in [0u64, 1, 42, 1 << 40, u64::MAX] {
            let bytes = set_key_and_check_its_group(&i, max_parallelism, &key);
            plain.update(&key).unwrap();
            windowed.update(&(key ^ 1)).unwrap();
            // Read back through the serialized bytes, and in a batch.
            i.backend.set_current_key_bytes(&bytes).unwrap();
            assert_eq!(plain.get().unwrap(), Some(key));
            assert_eq!(windowed.get().unwrap(), Some(key ^ 1));
            assert_eq!(plain.get_batch(&[key]).unwrap(), vec![Some(key)]);
            assert_eq!(windowed.get_batch(&[key]).unwrap(), vec![Some(key ^ 1)]);
            assert_eq!(i.backend.current_key::<u64>().unwrap(), Some(key));
        }
        let mut keys: Vec<u64> = i.backend.keys("v", &()).unwrap();
        keys.sort_unstable();
        assert_eq!(keys, vec![0, 1, 42, 1 << 40, u64::MAX]);
    }
    // i64 keys (sign bit flipped in ks1), on a backend of their own (one key type a backend).
    let i = full_at(factory, 128);
    let plain = i
        .backend
        .value_state(&ValueStateDescriptor::<i64>::new("v"))
        .unwrap();
    for key in [i64::MIN, -1, 0, 1, i64::MAX] {
        let bytes = set_key_and_check_its_group(&i, 128, &key);
        plain.update(&key).unwrap();
        i.backend.set_current_key_bytes(&bytes).unwrap();
        assert_eq!(plain.get().unwrap(), Some(key));
        assert_eq!(i.backend.current_key::<i64>().unwrap(), Some(key));
    }
}

/// Sets `key` as the current key and checks its key group against its serialized bytes, which
/// it returns.
fn set_key_and_check_its_group<K: keyedstate_core::StateKey>(
    i: &crate::Instance,
    max_parallelism: u32,
    key: &K,
) -> Vec<u8> {
    let mut bytes = Vec::new();
    codec::encode(key, &mut bytes).unwrap();
    i.backend.set_current_key(key).unwrap();
    let max_p = MaxParallelism::new(max_parallelism).unwrap();
    assert_eq!(
        i.backend.current_key_group().unwrap(),
        Some(max_p.key_group_of(&bytes))
    );
    bytes
}
