//! The conformance suite against the RocksDB backend, each test in its own temporary directory.

use keyedstate_core::{Clock, KeyGroupRange, MaxParallelism};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig, TimerStore};
use keyedstate_testkit::{Instance, conformance_suite};
use std::sync::Arc;

fn open(max_parallelism: MaxParallelism, range: KeyGroupRange, clock: Arc<dyn Clock>) -> Instance {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = RocksDbConfig::new(dir.path().join("db"), max_parallelism, range);
    config.clock = clock;
    Instance::with_guard(
        RocksDbBackend::open(config).expect("RocksDB backend opens"),
        dir,
    )
}

conformance_suite!(rocksdb, open);

/// The RocksDB backend with timers in memory (`TimerStore::Heap`), through the timer checks.
fn open_with_heap_timers(
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    clock: Arc<dyn Clock>,
) -> Instance {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = RocksDbConfig::new(dir.path().join("db"), max_parallelism, range);
    config.clock = clock;
    config.timer_store = TimerStore::Heap;
    Instance::with_guard(
        RocksDbBackend::open(config).expect("RocksDB backend opens"),
        dir,
    )
}

mod rocksdb_heap_timers {
    use super::*;
    conformance_suite!(@tests open_with_heap_timers;
        timers::timers_fire_in_timestamp_order_across_key_groups,
        timers::deleted_timers_do_not_fire_and_domains_are_apart,
        timers::timers_registered_while_firing_fire_too,
        timers::timer_services_of_one_backend_share_their_queues,
        timers::timers_follow_a_model_through_random_registers_deletes_and_firings,
    );
}

/// The RocksDB backend's timer cache at sizes that make every few pops refill it, and turned
/// off (`RocksDbConfig::timer_cache_size`), against the timer model.
fn open_with_timer_cache(
    size: usize,
) -> impl Fn(MaxParallelism, KeyGroupRange, Arc<dyn Clock>) -> Instance {
    move |max_parallelism, range, clock| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let mut config = RocksDbConfig::new(dir.path().join("db"), max_parallelism, range);
        config.clock = clock;
        config.timer_cache_size = size;
        Instance::with_guard(
            RocksDbBackend::open(config).expect("RocksDB backend opens"),
            dir,
        )
    }
}

#[test]
fn timers_follow_the_model_with_a_timer_cache_of_0_1_and_3() {
    for size in [0, 1, 3] {
        keyedstate_testkit::timers::timers_follow_a_model_through_random_registers_deletes_and_firings(
            &open_with_timer_cache(size),
        );
    }
}

/// The RocksDB backend with RocksDB's skip-list memtable (`Memtable::SkipList`), through the
/// whole suite.
fn open_with_skip_list(
    max_parallelism: MaxParallelism,
    range: KeyGroupRange,
    clock: Arc<dyn Clock>,
) -> Instance {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = RocksDbConfig::new(dir.path().join("db"), max_parallelism, range);
    config.clock = clock;
    config.memtable = keyedstate_rocksdb::Memtable::SkipList;
    Instance::with_guard(
        RocksDbBackend::open(config).expect("RocksDB backend opens"),
        dir,
    )
}

conformance_suite!(rocksdb_skip_list_memtable, open_with_skip_list);

/// The RocksDB engine with its type known to the compiler (`RocksDbBackend::open_typed`, static
/// dispatch): the same random operations, batch calls included, agree with the model.
#[test]
fn a_typed_rocksdb_backend_matches_the_model() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let opened = std::cell::Cell::new(0);
    keyedstate_testkit::model::random_operations_on_a_typed_backend_match_the_model(|max_p| {
        opened.set(opened.get() + 1);
        let path = dir.path().join(format!("db-{}", opened.get()));
        RocksDbBackend::open_typed(RocksDbConfig::new(path, max_p, max_p.full_range()))
            .expect("RocksDB backend opens")
    });
}
