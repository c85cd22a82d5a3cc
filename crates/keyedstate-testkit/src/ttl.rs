//! State TTL: expiry exactly at the boundary, both visibility modes, renewal on read, per
//! element and per map entry, registration rules, and full snapshots without expired entries.

use crate::fixture::{Factory, Instance};
use keyedstate_core::checkpoint::canonical::CanonicalSnapshot;
use keyedstate_core::checkpoint::{
    CheckpointAttempt, CheckpointStorage, MemoryStorage, SnapshotHandle,
};
use keyedstate_core::{
    ErrorKind, ListStateDescriptor, ManualClock, MapStateDescriptor, MaxParallelism,
    ReducingStateDescriptor, SnapshotKind, StateTtlConfig, TtlUpdateType, TtlVisibility,
    ValueStateDescriptor,
};
use std::sync::Arc;
use std::time::Duration;

const TTL: Duration = Duration::from_millis(100);

fn at(factory: &Factory, millis: u64) -> (Instance, Arc<ManualClock>) {
    let clock = ManualClock::new(millis);
    let max_p = MaxParallelism::new(128).unwrap();
    (factory(max_p, max_p.full_range(), clock.clone()), clock)
}

/// The meta info `state` is registered with.
fn registered(i: &Instance, state: &str) -> keyedstate_core::StateMeta {
    i.backend
        .states()
        .unwrap()
        .into_iter()
        .find(|m| m.name == state)
        .expect("the state is registered")
}

/// Entries physically stored for `state`, expired or not.
fn stored(i: &Instance, state: &str) -> usize {
    crate::fixture::stored_entries(&i.backend, state)
}

pub fn ttl_expires_exactly_at_the_boundary(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let ttl = StateTtlConfig::new(TTL);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u8, u32>::new("m").with_ttl(ttl))
        .unwrap();
    let sum = i
        .backend
        .reducing_state(&ReducingStateDescriptor::new("r", |a: &u32, b: &u32| a + b).with_ttl(ttl))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&7).unwrap();
    list.add(&1).unwrap();
    map.put(&1, &10).unwrap();
    sum.add(&5).unwrap();
    clock.set(1050);
    list.add(&2).unwrap();
    map.put(&2, &20).unwrap();
    clock.set(1099);
    assert_eq!(value.get().unwrap(), Some(7), "1 ms before the boundary");
    assert_eq!(list.get().unwrap(), vec![1, 2]);
    clock.set(1100);
    assert_eq!(
        value.get().unwrap(),
        None,
        "at the boundary a value has expired"
    );
    let mut elements = vec![5, 6, 7];
    list.get_into(&mut elements).unwrap();
    assert_eq!(elements, vec![2], "list elements expire one by one");
    assert_eq!(
        map.entries().unwrap(),
        vec![(2, 20)],
        "map entries expire one by one"
    );
    assert!(!map.contains(&1).unwrap());
    assert_eq!(sum.get().unwrap(), None);
    sum.add(&3).unwrap();
    assert_eq!(
        sum.get().unwrap(),
        Some(3),
        "an expired accumulator starts over"
    );
    assert_eq!(stored(&i, "v"), 0, "an expired value read is removed");
    clock.set(1150);
    assert!(list.get().unwrap().is_empty());
    assert!(map.is_empty().unwrap());
    assert_eq!(map.get(&2).unwrap(), None);
}

pub fn ttl_returns_expired_values_until_cleaned_up_when_asked(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    // No incremental cleanup: the heap would otherwise clean the value up before the read.
    let ttl = StateTtlConfig::new(TTL)
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp)
        .incremental_cleanup(0);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&7).unwrap();
    list.add(&1).unwrap();
    clock.set(5000);
    assert_eq!(
        value.get().unwrap(),
        Some(7),
        "expired, but not cleaned up yet"
    );
    assert_eq!(list.get().unwrap(), vec![1]);
    // As Flink: the read that returned an expired value removed it.
    assert_eq!(
        value.get().unwrap(),
        None,
        "removed by the read that returned it"
    );
    assert_eq!(list.get().unwrap(), Vec::<u32>::new());
    assert_eq!(stored(&i, "v"), 0);
    assert_eq!(stored(&i, "l"), 0);
}

pub fn ttl_on_read_and_write_renews_on_read(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let renewing = StateTtlConfig::new(TTL).update_type(TtlUpdateType::OnReadAndWrite);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("renewed").with_ttl(renewing))
        .unwrap();
    let plain = i
        .backend
        .value_state(
            &ValueStateDescriptor::<u32>::new("written").with_ttl(StateTtlConfig::new(TTL)),
        )
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u8, u32>::new("m").with_ttl(renewing))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&1).unwrap();
    plain.update(&2).unwrap();
    map.put(&1, &3).unwrap();
    clock.set(1090);
    assert_eq!(value.get().unwrap(), Some(1));
    assert_eq!(plain.get().unwrap(), Some(2));
    assert_eq!(map.get(&1).unwrap(), Some(3));
    clock.set(1150);
    assert_eq!(
        value.get().unwrap(),
        Some(1),
        "the read at 1090 renewed it until 1190"
    );
    assert_eq!(map.get(&1).unwrap(), Some(3));
    assert_eq!(
        plain.get().unwrap(),
        None,
        "a read does not renew on create and write"
    );
    clock.set(1250);
    assert_eq!(
        value.get().unwrap(),
        None,
        "renewed at 1150, expired at 1250"
    );
}

pub fn turning_ttl_on_or_off_is_incompatible(factory: &Factory) {
    let (i, _clock) = at(factory, 1000);
    i.backend
        .value_state(&ValueStateDescriptor::<u32>::new("plain"))
        .unwrap();
    let err = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("plain").with_ttl(StateTtlConfig::new(TTL)))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    assert!(err.to_string().contains("turning TTL on or off"), "{err}");
    i.backend
        .list_state(&ListStateDescriptor::<u32>::new("timed").with_ttl(StateTtlConfig::new(TTL)))
        .unwrap();
    let err = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("timed"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
}

/// As Flink: another TTL duration for an existing state is allowed and applies from then on
/// (only turning TTL on or off is incompatible); the checkpoint records the new one.
pub fn changing_the_ttl_of_a_state_applies_the_new_one(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let short = StateTtlConfig::new(TTL).incremental_cleanup(0);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(short))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&7).unwrap();
    let long = StateTtlConfig::new(TTL * 10).incremental_cleanup(0);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(long))
        .unwrap();
    clock.set(1000 + 5 * TTL.as_millis() as u64);
    assert_eq!(value.get().unwrap(), Some(7), "within the new TTL");
    let meta = registered(&i, "v");
    assert_eq!(meta.ttl.unwrap().millis, 10 * TTL.as_millis() as u64);
    clock.set(1000 + 5 * TTL.as_millis() as u64 + 10 * TTL.as_millis() as u64);
    assert_eq!(value.get().unwrap(), None, "past the new TTL");
}

/// `TtlUpdateType::Disabled` means no TTL, as in Flink: the state is registered without one.
pub fn a_disabled_ttl_registers_the_state_without_ttl(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let disabled = StateTtlConfig::new(TTL).update_type(TtlUpdateType::Disabled);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(disabled))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    value.update(&7).unwrap();
    clock.set(1_000_000);
    assert_eq!(value.get().unwrap(), Some(7), "never expires");
    let meta = registered(&i, "v");
    assert_eq!(meta.ttl, None);
    // The same as a state without TTL: registering it so is compatible.
    i.backend
        .value_state(&ValueStateDescriptor::<u32>::new("v"))
        .unwrap();
}

pub fn expired_entries_are_left_out_of_full_snapshots(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let ttl = StateTtlConfig::new(TTL)
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp)
        .incremental_cleanup(0);
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    let list = i
        .backend
        .list_state(&ListStateDescriptor::<u32>::new("l").with_ttl(ttl))
        .unwrap();
    for key in 0u64..4 {
        clock.set(1000 + key * 40);
        i.backend.set_current_key(&key).unwrap();
        value.update(&(key as u32)).unwrap();
        list.add(&(key as u32)).unwrap();
    }
    i.backend.set_current_key(&0u64).unwrap();
    clock.set(1145);
    list.add(&99).unwrap();
    // At 1145: keys 0 (1000) and 1 (1040) expired; key 0's list keeps the element added at 1145.
    let storage: Arc<dyn CheckpointStorage> = Arc::new(MemoryStorage::new());
    let handle = i
        .backend
        .snapshot(1, SnapshotKind::Full)
        .unwrap()
        .run(&storage, &CheckpointAttempt::new(1), 0)
        .unwrap();
    let SnapshotHandle::Full { file } = &handle.snapshot else {
        panic!("a full snapshot")
    };
    let bytes = storage.read(file).unwrap();
    let mut snapshot = CanonicalSnapshot::from_bytes(bytes, &file.path).unwrap();
    let (mut values, mut list_elements) = (0, 0);
    let names: Vec<String> = snapshot.states.iter().map(|m| m.name.clone()).collect();
    for key_group in snapshot.range.iter() {
        snapshot
            .scan_key_group(key_group, &mut |state, entry| {
                if names[state] == "v" {
                    values += 1;
                } else {
                    list_elements +=
                        keyedstate_core::key_layout::list_elements(entry.value).count();
                }
                Ok(())
            })
            .unwrap();
    }
    assert_eq!(values, 2, "keys 2 and 3 only");
    assert_eq!(
        list_elements, 3,
        "keys 2 and 3, and key 0's unexpired element"
    );
    assert_eq!(stored(&i, "v"), 4, "the live state itself is untouched");
}

/// A map iteration reads bounded chunks (counting expired entries too, so the work under the
/// backend's lock is bounded): a run of expired entries longer than a chunk is skipped, not
/// taken for the end of the map.
pub fn map_iteration_skips_runs_of_expired_entries(factory: &Factory) {
    let (i, clock) = at(factory, 1000);
    let ttl = StateTtlConfig::new(TTL).incremental_cleanup(0);
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<String, u32>::new("m").with_ttl(ttl))
        .unwrap();
    i.backend.set_current_key(&1u64).unwrap();
    // Equal lengths, so the byte order is the text order: the expired ones come first.
    for n in 0..600u32 {
        map.put(&format!("a{n:04}"), &n).unwrap();
    }
    clock.set(1050);
    for n in 0..10u32 {
        map.put(&format!("b{n:04}"), &n).unwrap();
    }
    clock.set(1120);
    let keys = map.keys().unwrap();
    assert_eq!(
        keys,
        (0..10).map(|n| format!("b{n:04}")).collect::<Vec<_>>()
    );
    assert!(!map.is_empty().unwrap());
}
