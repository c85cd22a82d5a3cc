//! The conformance suite against the heap backend.

use keyedstate_core::{Clock, KeyGroupRange, KeyedStateBackend, MaxParallelism};
use keyedstate_heap::HeapBackend;
use keyedstate_testkit::{Instance, conformance_suite};
use std::sync::Arc;

fn open(max_parallelism: MaxParallelism, range: KeyGroupRange, clock: Arc<dyn Clock>) -> Instance {
    let heap = HeapBackend::new(max_parallelism, range)
        .expect("heap backend opens")
        .with_clock(clock);
    Instance::new(KeyedStateBackend::new(Box::new(heap)))
}

conformance_suite!(heap, open);
