//! The heap's incremental TTL cleanup: each access of a state checks a few more entries and
//! removes the expired ones, so expired state goes away without being read.

use keyedstate_core::{
    KeyedStateBackend, ManualClock, MaxParallelism, StateTtlConfig, TtlVisibility,
    ValueStateDescriptor,
};
use keyedstate_heap::HeapBackend;
use keyedstate_testkit::stored_entries;
use std::time::Duration;

#[test]
fn accesses_remove_expired_entries_a_few_at_a_time() {
    let clock = ManualClock::new(1000);
    let max_p = MaxParallelism::new(128).unwrap();
    let heap = HeapBackend::new(max_p, max_p.full_range())
        .unwrap()
        .with_clock(clock.clone());
    let backend = KeyedStateBackend::new(Box::new(heap));
    let ttl = StateTtlConfig::new(Duration::from_millis(100))
        .visibility(TtlVisibility::ReturnExpiredIfNotCleanedUp)
        .incremental_cleanup(10);
    let value = backend
        .value_state(&ValueStateDescriptor::<u32>::new("v").with_ttl(ttl))
        .unwrap();
    for key in 0u32..50 {
        backend.set_current_key(&key).unwrap();
        value.update(&key).unwrap();
    }
    clock.set(2000);
    backend.set_current_key(&1000u32).unwrap();
    value.update(&0).unwrap();
    let mut previous = stored_entries(&backend, "v");
    let mut accesses = 0;
    while previous > 1 {
        assert!(value.get().unwrap().is_some(), "the fresh entry stays");
        let now = stored_entries(&backend, "v");
        assert!(
            previous - now <= 10,
            "at most 10 entries are checked per access"
        );
        previous = now;
        accesses += 1;
        assert!(accesses < 200, "cleanup makes progress");
    }
    assert_eq!(
        stored_entries(&backend, "v"),
        1,
        "only the unexpired entry is left"
    );
}
