//! Runtime metrics: sampled access latency per state and state size figures.

use crate::fixture::{Factory, full};
use keyedstate_core::{MapStateDescriptor, ValueStateDescriptor};

pub fn metrics_report_entries_and_sampled_latency(factory: &Factory) {
    let i = full(factory);
    let untracked = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("before"))
        .unwrap();
    i.backend.enable_latency_tracking(10).unwrap();
    let value = i
        .backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    let map = i
        .backend
        .map_state(&MapStateDescriptor::<u8, u64>::new("m"))
        .unwrap();
    for key in 0u64..100 {
        i.backend.set_current_key(&key).unwrap();
        value.update(&key).unwrap();
        map.put(&1, &key).unwrap();
        map.put(&2, &key).unwrap();
        untracked.update(&key).unwrap();
    }
    for key in 0u64..100 {
        i.backend.set_current_key(&key).unwrap();
        assert_eq!(value.get().unwrap(), Some(key));
    }
    let metrics = i.backend.metrics().unwrap();
    let state = |name: &str| {
        metrics
            .states
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .clone()
    };
    let v = state("v").latency.expect("tracked");
    assert_eq!(v.count, 20, "every 10th of 200 accesses is sampled");
    assert!(
        v.max_nanos > 0
            && v.quantile(0.5) <= v.quantile(0.99)
            && v.mean().as_nanos() <= u128::from(v.max_nanos)
    );
    assert_eq!(state("m").latency.unwrap().count, 20);
    assert_eq!(
        state("before").latency,
        None,
        "registered before tracking was enabled"
    );
    // Exact on the heap, RocksDB's estimate otherwise: allow the estimate some slack.
    for (name, expected) in [("v", 100u64), ("m", 200), ("before", 100)] {
        let entries = state(name).estimated_entries;
        assert!(
            entries.abs_diff(expected) <= expected / 2,
            "{name}: {entries} entries, expected about {expected}"
        );
    }
    assert_eq!(metrics.engine, i.backend.engine_name());
}
