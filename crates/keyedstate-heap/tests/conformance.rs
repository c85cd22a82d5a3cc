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

/// The heap engine with its type known to the compiler (`HeapBackend::open_typed`, static
/// dispatch): the same random operations, batch calls included, agree with the model.
#[test]
fn a_typed_heap_backend_matches_the_model() {
    keyedstate_testkit::model::random_operations_on_a_typed_backend_match_the_model(|max_p| {
        HeapBackend::open_typed(max_p, max_p.full_range()).expect("heap backend opens")
    });
}
