//! The TTL compaction filter removes expired values, map entries and fully expired lists from
//! RocksDB itself during a (manual) compaction, and keeps everything unexpired.

use keyedstate_core::{
    ListStateDescriptor, ManualClock, MapStateDescriptor, MaxParallelism, StateTtlConfig,
    TtlVisibility, ValueStateDescriptor,
};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate_testkit::stored_entries;
use std::ops::ControlFlow;
use std::time::Duration;

/// A RocksDB backend whose TTL clock starts at `millis`, in a temporary directory.
fn open_at(
    millis: u64,
) -> (
    tempfile::TempDir,
    std::sync::Arc<ManualClock>,
    keyedstate_core::KeyedStateBackend,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(millis);
    let max_p = MaxParallelism::new(128).unwrap();
    let mut config = RocksDbConfig::new(dir.path().join("db"), max_p, max_p.full_range());
    config.clock = clock.clone();
    (dir, clock, RocksDbBackend::open(config).unwrap())
}

/// The number of elements RocksDB holds in each stored list of `state`, in key order.
fn stored_list_lengths(backend: &keyedstate_core::KeyedStateBackend, state: &str) -> Vec<usize> {
    let mut lengths = Vec::new();
    backend
        .scan_raw(state, &mut |entry| {
            lengths.push(keyedstate_core::key_layout::list_elements(entry.value).count());
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
    lengths
}

#[test]
fn compaction_removes_expired_entries_and_keeps_the_rest() {
    let (_dir, clock, backend) = open_at(1000);
    // Returned until cleaned up: so that only the compaction can have removed them.
    let ttl = StateTtlConfig::new(Duration::from_millis(100))
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp);
    let value = backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    let map = backend
        .map_state(&MapStateDescriptor::<u32, u32>::new("m").with_ttl(ttl))
        .unwrap();
    let list = backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    for key in 0u32..100 {
        // Even keys at 1000, odd ones at 1500.
        clock.set(if key % 2 == 0 { 1000 } else { 1500 });
        backend.set_current_key(&key).unwrap();
        value.update(&key).unwrap();
        map.put(&key, &key).unwrap();
        map.put(&(key + 1000), &key).unwrap();
        list.update(&[key, key + 1]).unwrap();
    }
    clock.set(1550);
    assert_eq!(
        (
            stored_entries(&backend, "v"),
            stored_entries(&backend, "m"),
            stored_entries(&backend, "l")
        ),
        (100, 200, 100)
    );
    backend.compact().unwrap();
    assert_eq!(
        stored_entries(&backend, "v"),
        50,
        "expired values are gone from RocksDB"
    );
    assert_eq!(
        stored_entries(&backend, "m"),
        100,
        "expired map entries are gone"
    );
    assert_eq!(
        stored_entries(&backend, "l"),
        50,
        "lists whose elements all expired are gone"
    );
    backend.set_current_key(&3u32).unwrap();
    assert_eq!(value.get().unwrap(), Some(3));
    assert_eq!(list.get().unwrap(), vec![3, 4]);
    backend.set_current_key(&2u32).unwrap();
    assert_eq!(value.get().unwrap(), None);
}

#[test]
fn one_compaction_drops_expired_list_elements_merged_with_appended_ones() {
    let (_dir, clock, backend) = open_at(1000);
    let ttl = StateTtlConfig::new(Duration::from_millis(100))
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp);
    let list = backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    for key in 0u32..20 {
        backend.set_current_key(&key).unwrap();
        list.update(&[1, 2]).unwrap();
    }
    backend.compact().unwrap();
    clock.set(1500);
    for key in 0u32..20 {
        backend.set_current_key(&key).unwrap();
        list.add(&3).unwrap();
    }
    clock.set(1550);
    // RocksDB's C API hands the compaction filter plain values, not merge operands nor the
    // results of merges within the same compaction: the list's merge operator drops the expired
    // elements as it merges the appended one in, so one compaction is enough.
    backend.compact().unwrap();
    let elements = stored_list_lengths(&backend, "l");
    assert_eq!(
        elements,
        vec![1; 20],
        "only the element appended at 1500 is left in each list"
    );
    backend.set_current_key(&7u32).unwrap();
    assert_eq!(list.get().unwrap(), vec![3]);
}

/// A state registered again with a longer TTL: the compaction filter judges by the new TTL, so
/// it keeps what the old one would have dropped (and drops it once the new one has passed).
#[test]
fn compaction_filter_follows_a_changed_ttl() {
    let (_dir, clock, backend) = open_at(1000);
    let short = StateTtlConfig::new(Duration::from_millis(100))
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp);
    let value = backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(short))
        .unwrap();
    for key in 0u32..50 {
        backend.set_current_key(&key).unwrap();
        value.update(&key).unwrap();
    }
    let long = StateTtlConfig::new(Duration::from_secs(3600))
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp);
    backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(long))
        .unwrap();
    clock.set(11_000);
    backend.compact().unwrap();
    assert_eq!(stored_entries(&backend, "v"), 50, "kept under the new TTL");
    clock.set(1000 + 3_600_000);
    backend.compact().unwrap();
    assert_eq!(
        stored_entries(&backend, "v"),
        0,
        "gone once the new TTL passed"
    );
}

/// Lists made only of appends (merge operands, no base value) that expire whole: the merge
/// keeps one expired element, so the value is still a list, and the compaction filter removes
/// it at the next compaction; reads never see the expired elements.
#[test]
fn lists_of_expired_appends_shrink_then_go() {
    let (_dir, clock, backend) = open_at(1000);
    let ttl = StateTtlConfig::new(Duration::from_millis(100));
    let list = backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    for key in 0u32..20 {
        backend.set_current_key(&key).unwrap();
        for element in 0..5 {
            list.add(&element).unwrap();
        }
    }
    clock.set(1550);
    backend.compact().unwrap();
    let elements = stored_list_lengths(&backend, "l");
    assert!(
        elements.iter().all(|&n| n <= 1),
        "at most one expired element per list is left: {elements:?}"
    );
    backend.set_current_key(&7u32).unwrap();
    assert_eq!(list.get().unwrap(), Vec::<u32>::new());
    backend.compact().unwrap();
    assert_eq!(stored_entries(&backend, "l"), 0, "and the lists are gone");
}
