//! The conformance suite against the heap backend.

use keyedstate_heap::HeapBackend;
use keyedstate_testkit::{Instance, conformance_suite};

fn open(
    max_parallelism: keyedstate_core::MaxParallelism,
    range: keyedstate_core::KeyGroupRange,
) -> Instance {
    Instance::new(HeapBackend::open(max_parallelism, range).expect("heap backend opens"))
}

conformance_suite!(heap, open);
