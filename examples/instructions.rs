//! Instructions per state operation with every key in cache, for callgrind (run by
//! `scripts/instructions.sh`, which prints the table):
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*timed_ops*' \
//!     target/release/examples/instructions <heap|rocksdb> <operation>
//! ```
//!
//! Operations: `valueGet`, `valueUpdate`, and the batch calls `valueGetBatch` and
//! `valueUpdateBatch` (batches of [`BATCH`] keys; instructions per record).
//!
//! It fills 10,000 keys of a `ValueState<u64>` (max parallelism 2, as the benchmark workload),
//! visits them once untimed, then runs [`OPERATIONS`] operations (`set_current_key` plus one
//! state call) inside `timed_ops`, the only function callgrind counts. Instructions per
//! operation = the collected total / `OPERATIONS`.

use keyedstate::heap::HeapBackend;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{
    KeyedStateBackend, MaxParallelism, Result, StateEngine, ValueState, ValueStateDescriptor,
};
use std::hint::black_box;

const KEYS: u64 = 10_000;
/// Operations counted; the script divides by this.
pub const OPERATIONS: u64 = 100_000;
/// Records per call of the batch operations, as in the benchmark workload.
const BATCH: usize = 1_000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (engine, op) = (args.next(), args.next());
    let (Some(engine), Some(op)) = (engine, op) else {
        eprintln!(
            "usage: instructions <heap|rocksdb> <valueGet|valueUpdate|valueGetBatch|valueUpdateBatch>"
        );
        std::process::exit(2);
    };
    let max_p = MaxParallelism::new(2)?;
    let dir = tempfile::tempdir().map_err(|e| keyedstate::Error::io("tempdir", e))?;
    // Statically dispatched, as `keyedstate bench` measures them.
    match engine.as_str() {
        "heap" => measure(HeapBackend::open_typed(max_p, max_p.full_range())?, &op),
        "rocksdb" => measure(
            RocksDbBackend::open_typed(RocksDbConfig::new(
                dir.path().join("db"),
                max_p,
                max_p.full_range(),
            ))?,
            &op,
        ),
        other => {
            eprintln!("unknown engine '{other}'");
            std::process::exit(2);
        }
    }
}

fn measure<E: StateEngine>(backend: KeyedStateBackend<E>, op: &str) -> Result<()> {
    let value = backend.value_state(&ValueStateDescriptor::<u64>::new("value"))?;
    for key in 0..KEYS {
        backend.set_current_key(&key)?;
        value.update(&key)?;
    }
    // One untimed visit brings every key (and RocksDB's blocks) into cache.
    timed_ops_uncounted(&backend, &value, op)?;
    timed_ops(&backend, &value, op)?;
    backend.close()
}

fn timed_ops_uncounted<E: StateEngine>(
    b: &KeyedStateBackend<E>,
    v: &ValueState<u64, E>,
    op: &str,
) -> Result<()> {
    run(b, v, op, KEYS)
}

#[inline(never)]
fn timed_ops<E: StateEngine>(
    b: &KeyedStateBackend<E>,
    v: &ValueState<u64, E>,
    op: &str,
) -> Result<()> {
    run(b, v, op, OPERATIONS)
}

#[inline(always)]
fn run<E: StateEngine>(
    b: &KeyedStateBackend<E>,
    v: &ValueState<u64, E>,
    op: &str,
    n: u64,
) -> Result<()> {
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
        "valueGetBatch" | "valueUpdateBatch" => {
            let (mut keys, mut entries) = (Vec::with_capacity(BATCH), Vec::with_capacity(BATCH));
            for _ in 0..n / BATCH as u64 {
                keys.clear();
                for _ in 0..BATCH {
                    key = (key + 7919) % KEYS;
                    keys.push(key);
                }
                if op == "valueGetBatch" {
                    black_box(v.get_batch(&keys)?);
                } else {
                    entries.clear();
                    entries.extend(keys.iter().map(|&k| (k, k + 1)));
                    v.update_batch(&entries)?;
                }
            }
        }
        other => {
            eprintln!("unknown operation '{other}'");
            std::process::exit(2);
        }
    }
    Ok(())
}
