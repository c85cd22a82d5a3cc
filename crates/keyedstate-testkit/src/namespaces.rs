//! Namespaces (windows) are part of the state key.

use crate::fixture::{Factory, full};
use crate::states::Average;
use keyedstate_core::{
    AggregatingState, AggregatingStateDescriptor, ListState, ListStateDescriptor,
    MapStateDescriptor, ReducingState, ReducingStateDescriptor, ValueStateDescriptor,
};

pub fn namespaces_are_isolated(factory: &Factory) {
    let i = full(factory);
    let mut value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v"))
        .unwrap();
    let mut map = i
        .backend
        .map_state(&MapStateDescriptor::<u8, u8>::new("m"))
        .unwrap();
    i.backend.set_current_key("k").unwrap();
    value.update(&0).unwrap();
    map.put(&1, &1).unwrap();
    for window in [10u64, 20] {
        value.set_namespace(&window).unwrap();
        map.set_namespace(&window).unwrap();
        assert_eq!(value.get().unwrap(), None, "window {window} starts empty");
        assert!(map.is_empty().unwrap());
        value.update(&(window as u32)).unwrap();
        map.put(&(window as u8), &2).unwrap();
    }
    value.set_namespace(&10u64).unwrap();
    map.set_namespace(&10u64).unwrap();
    assert_eq!(value.get().unwrap(), Some(10));
    assert_eq!(map.entries().unwrap(), vec![(10, 2)]);
    map.clear().unwrap();
    map.set_namespace(&20u64).unwrap();
    assert_eq!(
        map.entries().unwrap(),
        vec![(20, 2)],
        "clearing one window keeps the others"
    );
    value.set_namespace(&()).unwrap();
    map.set_namespace(&()).unwrap();
    assert_eq!(value.get().unwrap(), Some(0));
    assert_eq!(map.entries().unwrap(), vec![(1, 1)]);
    let mut windows = i.backend.keys::<String, _>("v", &20u64).unwrap();
    windows.sort();
    assert_eq!(windows, vec!["k"]);
}

/// A list, a reducing and an aggregating state of key 1, each with 10, 20 and 30 added in
/// windows 1, 2 and 3.
fn three_windows(
    factory: &Factory,
) -> (
    crate::Instance,
    ListState<u32>,
    ReducingState<u32>,
    AggregatingState<Average>,
) {
    let i = full(factory);
    let mut list = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("l"))
        .unwrap();
    let mut sum = i
        .backend
        .reducing_state(&ReducingStateDescriptor::new("r", |a: &u32, b: &u32| a + b))
        .unwrap();
    let mut avg = i
        .backend
        .aggregating_state(&AggregatingStateDescriptor::new("a", Average))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    for (window, x) in [(1u64, 10u32), (2, 20), (3, 30)] {
        list.set_namespace(&window).unwrap();
        sum.set_namespace(&window).unwrap();
        avg.set_namespace(&window).unwrap();
        list.add(&x).unwrap();
        sum.add(&x).unwrap();
        avg.add(&u64::from(x)).unwrap();
    }
    (i, list, sum, avg)
}

pub fn merge_namespaces_combines_sources(factory: &Factory) {
    // The instance stays alive to the end: the states live in it.
    let (_instance, mut list, mut sum, mut avg) = three_windows(factory);
    list.merge_namespaces(&1u64, &[2u64, 3, 99]).unwrap();
    sum.merge_namespaces(&1u64, &[2u64, 3]).unwrap();
    avg.merge_namespaces(&4u64, &[1u64, 2, 3]).unwrap();
    list.set_namespace(&1u64).unwrap();
    sum.set_namespace(&1u64).unwrap();
    avg.set_namespace(&4u64).unwrap();
    assert_eq!(list.get().unwrap(), vec![10, 20, 30]);
    assert_eq!(sum.get().unwrap(), Some(60));
    assert_eq!(avg.get().unwrap(), Some(20.0));
    for window in [2u64, 3] {
        list.set_namespace(&window).unwrap();
        sum.set_namespace(&window).unwrap();
        assert!(
            list.get().unwrap().is_empty(),
            "merged source {window} is gone"
        );
        assert_eq!(sum.get().unwrap(), None);
    }
    avg.set_namespace(&1u64).unwrap();
    assert_eq!(avg.get().unwrap(), None);
}

/// As Flink: a target that is also one of the sources counts once (the sources are read and
/// removed first, then folded into what the target still holds).
pub fn merge_namespaces_with_the_target_among_sources_counts_it_once(factory: &Factory) {
    // The instance stays alive to the end: the states live in it.
    let (_instance, mut list, mut sum, mut avg) = three_windows(factory);
    list.merge_namespaces(&1u64, &[2u64, 1, 3]).unwrap();
    sum.merge_namespaces(&1u64, &[1u64, 2, 3]).unwrap();
    avg.merge_namespaces(&2u64, &[1u64, 2, 3]).unwrap();
    list.set_namespace(&1u64).unwrap();
    sum.set_namespace(&1u64).unwrap();
    avg.set_namespace(&2u64).unwrap();
    assert_eq!(
        list.get().unwrap(),
        vec![20, 10, 30],
        "the sources in order"
    );
    assert_eq!(sum.get().unwrap(), Some(60));
    assert_eq!(avg.get().unwrap(), Some(20.0));
    for window in [2u64, 3] {
        sum.set_namespace(&window).unwrap();
        assert_eq!(sum.get().unwrap(), None, "merged source {window} is gone");
    }
}
