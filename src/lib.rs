#![doc = include_str!("../README.md")]

pub use keyedstate_core::*;

pub mod job;

/// The heap backend: keyed state in memory.
pub mod heap {
    pub use keyedstate_heap::*;
}

/// The RocksDB backend: keyed state larger than memory.
pub mod rocksdb {
    pub use keyedstate_rocksdb::*;
}
