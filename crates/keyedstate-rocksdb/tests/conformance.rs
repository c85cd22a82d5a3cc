//! The conformance suite against the RocksDB backend, each test in its own temporary directory.

use keyedstate_core::{KeyGroupRange, MaxParallelism};
use keyedstate_rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate_testkit::{Instance, conformance_suite};

fn open(max_parallelism: MaxParallelism, range: KeyGroupRange) -> Instance {
    let dir = tempfile::tempdir().expect("temporary directory");
    let config = RocksDbConfig::new(dir.path().join("db"), max_parallelism, range);
    Instance::with_guard(
        RocksDbBackend::open(config).expect("RocksDB backend opens"),
        dir,
    )
}

conformance_suite!(rocksdb, open);
