//! Instructions per state operation with every key in cache, for callgrind (run by
//! `scripts/instructions.sh`, which prints the table):
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*timed_ops*' \
//!     target/release/examples/instructions <heap|rocksdb> <valueGet|valueUpdate>
//! ```
//!
//! It fills 10,000 keys of a `ValueState<u64>` (max parallelism 2, as the benchmark workload),
//! visits them once untimed, then runs [`OPERATIONS`] operations (`set_current_key` plus one
//! state call) inside `timed_ops`, the only function callgrind counts. Instructions per
//! operation = the collected total / `OPERATIONS`.

use keyedstate::heap::HeapBackend;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{KeyedStateBackend, MaxParallelism, Result, ValueState, ValueStateDescriptor};
use std::hint::black_box;

const KEYS: u64 = 10_000;
/// Operations counted; the script divides by this.
pub const OPERATIONS: u64 = 100_000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (engine, op) = (args.next(), args.next());
    let (Some(engine), Some(op)) = (engine, op) else {
        eprintln!("usage: instructions <heap|rocksdb> <valueGet|valueUpdate>");
        std::process::exit(2);
    };
    let max_p = MaxParallelism::new(2)?;
    let dir = tempfile::tempdir().map_err(|e| keyedstate::Error::io("tempdir", e))?;
    let backend = match engine.as_str() {
        "heap" => HeapBackend::open(max_p, max_p.full_range())?,
        "rocksdb" => RocksDbBackend::open(RocksDbConfig::new(
            dir.path().join("db"),
            max_p,
            max_p.full_range(),
        ))?,
        other => {
            eprintln!("unknown engine '{other}'");
            std::process::exit(2);
        }
    };
    let value = backend.value_state(&ValueStateDescriptor::<u64>::new("value"))?;
    for key in 0..KEYS {
        backend.set_current_key(&key)?;
        value.update(&key)?;
    }
    // One untimed visit brings every key (and RocksDB's blocks) into cache.
    timed_ops_uncounted(&backend, &value, &op)?;
    timed_ops(&backend, &value, &op)?;
    backend.close()
}

fn timed_ops_uncounted(b: &KeyedStateBackend, v: &ValueState<u64>, op: &str) -> Result<()> {
    run(b, v, op, KEYS)
}

#[inline(never)]
fn timed_ops(b: &KeyedStateBackend, v: &ValueState<u64>, op: &str) -> Result<()> {
    run(b, v, op, OPERATIONS)
}

#[inline(always)]
fn run(b: &KeyedStateBackend, v: &ValueState<u64>, op: &str, n: u64) -> Result<()> {
    // A fixed stride through the keys, so consecutive operations touch unrelated slots.
    let mut key = 0u64;
    match op {
        "valueGet" => {
            for _ in 0..n {
                key = (key + 7919) % KEYS;
                b.set_current_key(&key)?;
                black_box(v.get()?);
            }
        }
        "valueUpdate" => {
            for _ in 0..n {
                key = (key + 7919) % KEYS;
                b.set_current_key(&key)?;
                v.update(&(key + 1))?;
            }
        }
        other => {
            eprintln!("unknown operation '{other}'");
            std::process::exit(2);
        }
    }
    Ok(())
}
