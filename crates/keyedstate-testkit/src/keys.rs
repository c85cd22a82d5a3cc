//! Iteration over the keys of a state.

use crate::fixture::{Factory, full};
use keyedstate_core::{ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor};

pub fn keys_lists_each_key_of_a_namespace_once(factory: &Factory) {
    let i = full(factory);
    let mut map = i
        .backend
        .map_state(&MapStateDescriptor::<u32, u32>::new("m"))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("l"))
        .unwrap();
    for key in 0u64..50 {
        i.backend.set_current_key(&key).unwrap();
        for user_key in 0..3 {
            map.put(&user_key, &1).unwrap();
        }
        if key.is_multiple_of(2) {
            list.add(&1).unwrap();
        }
    }
    map.set_namespace(&"other").unwrap();
    i.backend.set_current_key(&1000u64).unwrap();
    map.put(&1, &1).unwrap();

    let mut keys: Vec<u64> = i.backend.keys("m", &()).unwrap();
    keys.sort();
    assert_eq!(
        keys,
        (0..50).collect::<Vec<_>>(),
        "one key per map, however many entries"
    );
    assert_eq!(i.backend.keys::<u64, _>("m", &"other").unwrap(), vec![1000]);
    let mut even: Vec<u64> = i.backend.keys("l", &()).unwrap();
    even.sort();
    assert_eq!(even, (0..50).step_by(2).collect::<Vec<_>>());
}

pub fn keys_of_a_state_without_entries_is_empty(factory: &Factory) {
    let i = full(factory);
    i.backend
        .value_state(&ValueStateDescriptor::<u32>::new("v"))
        .unwrap();
    assert!(i.backend.keys::<u64, _>("v", &()).unwrap().is_empty());
    let err = i.backend.keys::<u64, _>("unknown", &()).unwrap_err();
    assert_eq!(err.kind(), keyedstate_core::ErrorKind::InvalidArgument);
}

/// `keys_iter` reads one key group at a time: the caller may use state between keys (a
/// key-by-key migration, say), and every key comes once, in key-group order.
pub fn keys_iterate_lazily_while_the_caller_uses_state(factory: &Factory) {
    let i = full(factory);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let copy = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("copy"))
        .unwrap();
    for key in 0u64..300 {
        i.backend.set_current_key(&key).unwrap();
        value.update(&(key * 2)).unwrap();
    }
    let mut seen = Vec::new();
    let mut last_group = 0;
    for key in i.backend.keys_iter::<u64, _>("v", &()).unwrap() {
        let key = key.unwrap();
        i.backend.set_current_key(&key).unwrap();
        let group = i.backend.current_key_group().unwrap().unwrap();
        assert!(group >= last_group, "key-group order");
        last_group = group;
        copy.update(&value.get().unwrap().unwrap()).unwrap();
        seen.push(key);
    }
    seen.sort();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
    let mut copied: Vec<u64> = i.backend.keys("copy", &()).unwrap();
    copied.sort();
    assert_eq!(copied, seen);
    assert!(i.backend.keys_iter::<u64, _>("unknown", &()).is_err());
}
