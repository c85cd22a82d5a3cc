//! The conformance suite against the RocksDB backend, each test in its own temporary directory.

use keyedstate_core::{Clock, KeyGroupRange, MaxParallelism};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
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
