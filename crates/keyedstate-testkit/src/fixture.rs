//! How the suite gets backends to test.

use keyedstate_core::Clock;
use keyedstate_core::ttl::system_clock;
use keyedstate_core::{KeyGroupRange, KeyedStateBackend, MaxParallelism};
use std::any::Any;
use std::sync::Arc;

/// A backend under test, with whatever must outlive it (a temporary directory).
pub struct Instance {
    pub backend: KeyedStateBackend,
    _guard: Option<Box<dyn Any>>,
}

impl Instance {
    pub fn new(backend: KeyedStateBackend) -> Self {
        Instance {
            backend,
            _guard: None,
        }
    }

    /// A backend that needs `guard` alive as long as it is (dropped after the backend).
    pub fn with_guard(backend: KeyedStateBackend, guard: impl Any) -> Self {
        Instance {
            backend,
            _guard: Some(Box::new(guard)),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // Close before the guard (a temporary directory) goes away.
        let _ = self.backend.close();
    }
}

/// Opens a fresh, empty backend holding `range` of `max_parallelism`'s key groups, whose state
/// TTL reads `clock`.
pub type Factory = dyn Fn(MaxParallelism, KeyGroupRange, Arc<dyn Clock>) -> Instance;

/// A backend holding every key group of max parallelism 128.
pub fn full(factory: &Factory) -> Instance {
    full_at(factory, 128)
}

pub fn full_at(factory: &Factory, max_parallelism: u32) -> Instance {
    let max_p = MaxParallelism::new(max_parallelism).expect("valid max parallelism");
    factory(max_p, max_p.full_range(), system_clock())
}

/// Entries physically stored for `state`: expired TTL entries not yet cleaned up included.
pub fn stored_entries(backend: &keyedstate_core::KeyedStateBackend, state: &str) -> usize {
    let mut n = 0;
    backend
        .scan_raw(state, &mut |_| {
            n += 1;
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .expect("the state can be scanned");
    n
}
