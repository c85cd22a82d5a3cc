//! Every operation of every state kind.

use crate::fixture::{Factory, full};
use keyedstate_core::{
    AggregateFunction, AggregatingStateDescriptor, ErrorKind, ListStateDescriptor,
    MapStateDescriptor, ReducingStateDescriptor, ValueStateDescriptor,
};

/// Average of u64 inputs: accumulator (sum, count). Used by the suite and the model.
pub struct Average;

impl AggregateFunction for Average {
    type In = u64;
    type Acc = (u64, u64);
    type Out = f64;
    fn create_accumulator(&self) -> (u64, u64) {
        (0, 0)
    }
    fn add(&self, value: &u64, (sum, count): (u64, u64)) -> (u64, u64) {
        (sum.wrapping_add(*value), count + 1)
    }
    fn result(&self, &(sum, count): &(u64, u64)) -> f64 {
        sum as f64 / count as f64
    }
    fn merge(&self, a: (u64, u64), b: (u64, u64)) -> (u64, u64) {
        (a.0.wrapping_add(b.0), a.1 + b.1)
    }
}

pub fn value_state_get_update_clear(factory: &Factory) {
    let i = full(factory);
    let state = i
        .backend
        .value_state(&ValueStateDescriptor::<String>::new("v"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    assert_eq!(state.get().unwrap(), None);
    state.update(&"one".to_owned()).unwrap();
    i.backend.set_current_key(&2u64).unwrap();
    assert_eq!(state.get().unwrap(), None, "another key sees nothing");
    state.update(&"two".to_owned()).unwrap();
    state.update(&"deux".to_owned()).unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    assert_eq!(state.get().unwrap().as_deref(), Some("one"));
    state.clear().unwrap();
    assert_eq!(state.get().unwrap(), None);
    i.backend.set_current_key(&2u64).unwrap();
    assert_eq!(state.get().unwrap().as_deref(), Some("deux"));
}

pub fn list_state_get_add_update_clear(factory: &Factory) {
    let i = full(factory);
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u64>::new("l"))
        .unwrap();
    i.backend.set_current_key("k").unwrap();
    assert!(list.get().unwrap().is_empty());
    list.add(&1).unwrap();
    list.add(&2).unwrap();
    list.add_all(&[3, 4]).unwrap();
    list.add_all(&[]).unwrap();
    assert_eq!(list.get().unwrap(), vec![1, 2, 3, 4]);
    list.update(&[9, 8]).unwrap();
    assert_eq!(list.get().unwrap(), vec![9, 8]);
    list.add(&7).unwrap();
    assert_eq!(list.get().unwrap(), vec![9, 8, 7]);
    list.update(&[]).unwrap();
    assert!(
        list.get().unwrap().is_empty(),
        "update with no elements clears"
    );
    list.add(&5).unwrap();
    list.clear().unwrap();
    assert!(list.get().unwrap().is_empty());
    assert!(i.backend.keys::<String, _>("l", &()).unwrap().is_empty());
}

/// `get_into` returns what `get` does, replacing whatever the vector held, for a list, another
/// key's list and no list.
pub fn list_get_into_replaces_the_vectors_contents_with_the_list(factory: &Factory) {
    let i = full(factory);
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u64>::new("l"))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    list.add_all(&[1, 2, 3]).unwrap();
    i.backend.set_current_key(&2u64).unwrap();
    list.add(&40).unwrap();
    let mut out = vec![99, 98, 97, 96];
    for (key, expected) in [(1u64, vec![1, 2, 3]), (2, vec![40]), (3, vec![])] {
        i.backend.set_current_key(&key).unwrap();
        list.get_into(&mut out).unwrap();
        assert_eq!(out, expected, "key {key}");
        assert_eq!(out, list.get().unwrap(), "key {key}");
    }
}

/// Elements whose frames have lengths on both sides of each varint width (the frame's
/// length is one byte below 128 encoded bytes, two below 16,384, three above), appended one
/// by one, in bulk, in a batch and written by `update`, come back as they went in.
pub fn list_elements_of_every_frame_length_come_back(factory: &Factory) {
    let i = full(factory);
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<String>::new("l"))
        .unwrap();
    // A string's ks1 encoding is its length (a varint) and its bytes: 126 characters encode
    // as 127 bytes, 127 as 129.
    let elements: Vec<String> = [0, 1, 126, 127, 128, 200, 16_380, 16_383, 20_000]
        .iter()
        .map(|&n| (0..n).map(|j| char::from(b'a' + (j % 26) as u8)).collect())
        .collect();
    i.backend.set_current_key(&1u64).unwrap();
    for element in &elements {
        list.add(element).unwrap();
    }
    assert_eq!(list.get().unwrap(), elements, "added one by one");
    i.backend.set_current_key(&2u64).unwrap();
    list.add_all(&elements).unwrap();
    assert_eq!(list.get().unwrap(), elements, "added in bulk");
    i.backend.set_current_key(&3u64).unwrap();
    list.update(&elements).unwrap();
    assert_eq!(list.get().unwrap(), elements, "updated");
    let batch: Vec<(u64, String)> = elements.iter().map(|e| (4u64, e.clone())).collect();
    list.add_batch(&batch).unwrap();
    i.backend.set_current_key(&4u64).unwrap();
    assert_eq!(list.get().unwrap(), elements, "added in a batch");
}

pub fn map_state_operations(factory: &Factory) {
    let i = full(factory);
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<String, f64>::new("m"))
        .unwrap();
    i.backend.set_current_key(&7u32).unwrap();
    assert!(map.is_empty().unwrap());
    assert_eq!(map.get(&"a".to_owned()).unwrap(), None);
    map.put(&"a".to_owned(), &1.5).unwrap();
    map.put(&"b".to_owned(), &2.5).unwrap();
    let more = [("c".to_owned(), 3.5), ("d".to_owned(), 4.5)];
    map.put_all(more.iter().map(|(k, v)| (k, v))).unwrap();
    map.put(&"a".to_owned(), &1.25).unwrap();
    assert_eq!(map.get(&"a".to_owned()).unwrap(), Some(1.25));
    assert!(map.contains(&"c".to_owned()).unwrap());
    assert!(!map.contains(&"z".to_owned()).unwrap());
    map.remove(&"b".to_owned()).unwrap();
    map.remove(&"absent".to_owned()).unwrap();
    let mut entries = map.entries().unwrap();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        entries,
        vec![("a".into(), 1.25), ("c".into(), 3.5), ("d".into(), 4.5)]
    );
    let mut keys = map.keys().unwrap();
    keys.sort();
    assert_eq!(keys, vec!["a", "c", "d"]);
    let mut values = map.values().unwrap();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, vec![1.25, 3.5, 4.5]);
    assert!(!map.is_empty().unwrap());

    i.backend.set_current_key(&8u32).unwrap();
    assert!(map.is_empty().unwrap(), "another key's map is separate");
    map.put(&"x".to_owned(), &0.0).unwrap();
    map.remove(&"x".to_owned()).unwrap();
    assert!(
        map.is_empty().unwrap(),
        "removing the last entry empties the map"
    );

    i.backend.set_current_key(&7u32).unwrap();
    map.clear().unwrap();
    assert!(map.is_empty().unwrap());
    assert_eq!(map.get(&"c".to_owned()).unwrap(), None);
    assert!(i.backend.keys::<u32, _>("m", &()).unwrap().is_empty());
}

pub fn reducing_state_folds_added_values(factory: &Factory) {
    let i = full(factory);
    let sum = i
        .backend
        .reducing_state(&ReducingStateDescriptor::new("sum", |a: &u64, b: &u64| {
            a + b
        }))
        .unwrap();
    i.backend.set_current_key(&1u8).unwrap();
    assert_eq!(sum.get().unwrap(), None);
    sum.add(&5).unwrap();
    assert_eq!(sum.get().unwrap(), Some(5));
    sum.add(&7).unwrap();
    sum.add(&30).unwrap();
    assert_eq!(sum.get().unwrap(), Some(42));
    i.backend.set_current_key(&2u8).unwrap();
    assert_eq!(sum.get().unwrap(), None);
    i.backend.set_current_key(&1u8).unwrap();
    sum.clear().unwrap();
    assert_eq!(sum.get().unwrap(), None);
    sum.add(&1).unwrap();
    assert_eq!(sum.get().unwrap(), Some(1));
}

pub fn aggregating_state_accumulates(factory: &Factory) {
    let i = full(factory);
    let avg = i
        .backend
        .aggregating_state(&AggregatingStateDescriptor::new("avg", Average))
        .unwrap();
    i.backend.set_current_key("x").unwrap();
    assert_eq!(avg.get().unwrap(), None);
    avg.add(&2).unwrap();
    avg.add(&4).unwrap();
    avg.add(&9).unwrap();
    assert_eq!(avg.get().unwrap(), Some(5.0));
    i.backend.set_current_key("y").unwrap();
    assert_eq!(avg.get().unwrap(), None);
    i.backend.set_current_key("x").unwrap();
    avg.clear().unwrap();
    assert_eq!(avg.get().unwrap(), None);
}

/// Map iteration does not hold the backend while the caller runs: state calls from inside a
/// visit (Flink's iterate-and-remove, reads of other states) work instead of deadlocking, and a
/// map larger than one chunk iterates whole, in order. Changing the current key mid-iteration
/// is an error, not a silent switch to another map.
pub fn map_iteration_lets_the_caller_use_state_and_remove_entries(factory: &Factory) {
    let i = full(factory);
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u32, u64>::new("m"))
        .unwrap();
    let seen = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("seen"))
        .unwrap();
    i.backend.set_current_key("k").unwrap();
    for user_key in 0..1000u32 {
        map.put(&user_key, &(u64::from(user_key) * 2)).unwrap();
    }
    let mut visited = 0u32;
    map.for_each(|user_key, value| {
        assert_eq!(value, u64::from(user_key) * 2);
        // Reads and writes of state from inside the visit.
        seen.update(&(seen.get()?.unwrap_or(0) + 1))?;
        if user_key % 2 == 0 {
            map.remove(&user_key)?;
            assert!(!map.contains(&user_key)?);
        }
        visited += 1;
        Ok(std::ops::ControlFlow::Continue(()))
    })
    .unwrap();
    assert_eq!(visited, 1000);
    assert_eq!(seen.get().unwrap(), Some(1000));
    // (In the order of the keys' bytes, which for bincode's varints is not numeric past 250.)
    let mut left: Vec<u32> = map.keys().unwrap();
    left.sort_unstable();
    assert_eq!(left, (0..1000).filter(|k| k % 2 == 1).collect::<Vec<_>>());
    // The lazy iterator: removing each entry as it comes empties the map.
    for entry in map.iter() {
        let (user_key, _) = entry.unwrap();
        map.remove(&user_key).unwrap();
    }
    assert!(map.is_empty().unwrap());
    for user_key in 0..600u32 {
        map.put(&user_key, &0).unwrap();
    }
    let mut iter = map.iter();
    assert!(iter.next().unwrap().is_ok());
    let mut rest = Vec::new();
    for _ in 0..299 {
        rest.push(iter.next().unwrap().unwrap().0);
    }
    i.backend.set_current_key("other").unwrap();
    let err = iter
        .find_map(|e| e.err())
        .expect("the next chunk refuses another key");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
}

/// Clearing a map larger than one deletion batch removes every entry of that map and nothing of
/// the next key's.
pub fn clearing_a_large_map_removes_every_entry(factory: &Factory) {
    let i = full(factory);
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u32, u8>::new("m"))
        .unwrap();
    let entries: Vec<(u32, u8)> = (0..20_000).map(|k| (k, 0)).collect();
    for key in [1u64, 2] {
        i.backend.set_current_key(&key).unwrap();
        map.put_all(entries.iter().map(|(k, v)| (k, v))).unwrap();
    }
    i.backend.set_current_key(&1u64).unwrap();
    map.clear().unwrap();
    assert!(map.is_empty().unwrap());
    assert_eq!(map.iter().count(), 0);
    i.backend.set_current_key(&2u64).unwrap();
    assert_eq!(map.iter().count(), 20_000);
    assert_eq!(crate::stored_entries(&i.backend, "m"), 20_000);
}

/// Map state iterates integer and float user keys in numeric order (their `ks1` bytes are
/// big-endian, signed and float ones transformed to order), as Flink's big-endian serializers
/// do; bincode's varints did not (300 sorted before 2).
pub fn map_iteration_follows_the_numeric_order_of_user_keys(factory: &Factory) {
    let i = full(factory);
    i.backend.set_current_key(&1u64).unwrap();
    let unsigned = i
        .backend
        .map_state(&MapStateDescriptor::<u64, u8>::new("u"))
        .unwrap();
    let signed = i
        .backend
        .map_state(&MapStateDescriptor::<i32, u8>::new("i"))
        .unwrap();
    let floats = i
        .backend
        .map_state(&MapStateDescriptor::<f64, u8>::new("f"))
        .unwrap();
    let u_keys = [70_000u64, 2, 300, u64::MAX, 0, 251, 1];
    let i_keys = [3i32, -1, i32::MIN, 0, -300, i32::MAX, 250];
    let f_keys = [2.5f64, -0.5, 0.0, -1e300, 1e-9, -0.0, f64::INFINITY];
    for (n, (&u, (&s, &f))) in u_keys.iter().zip(i_keys.iter().zip(&f_keys)).enumerate() {
        unsigned.put(&u, &(n as u8)).unwrap();
        signed.put(&s, &(n as u8)).unwrap();
        floats.put(&f, &(n as u8)).unwrap();
    }
    let keys_of = |entries: Vec<(u64, u8)>| entries.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    let mut sorted = u_keys.to_vec();
    sorted.sort();
    assert_eq!(keys_of(unsigned.entries().unwrap()), sorted);
    let mut sorted = i_keys.to_vec();
    sorted.sort();
    let got: Vec<i32> = signed
        .entries()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, sorted);
    let mut sorted = f_keys.to_vec();
    sorted.sort_by(f64::total_cmp);
    let got: Vec<f64> = floats
        .entries()
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        got.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
        sorted.iter().map(|f| f.to_bits()).collect::<Vec<_>>(),
        "{got:?}"
    );
}
