//! Instructions per state operation with every key in cache, for callgrind (run by
//! `scripts/instructions.sh`, which prints the table):
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*timed_ops*' \
//!     target/release/examples/instructions <heap|rocksdb> <operation>
//! ```
//!
//! Operations: `valueGet`, `valueUpdate`, the batch calls `valueGetBatch` and
//! `valueUpdateBatch` (batches of [`BATCH`] keys; instructions per record), `listGet` (get into a
//! reused vector and sum a list of one `u64`), `listAppend` (a `u64`) and its batch call `listAppendBatch`,
//! `mapGet` and `mapUpdate` (a `u64` user key of 10 to an `f64`) and the batch call
//! `mapGetBatch`, as in the benchmark workload.
//!
//! It fills 10,000 keys of the operation's state (max parallelism 2, as the benchmark
//! workload), visits them once untimed, then runs [`OPERATIONS`] operations (`set_current_key`
//! plus one state call) inside `timed_ops`, the only function callgrind counts. Instructions
//! per operation = the collected total / `OPERATIONS`.

use keyedstate::heap::HeapBackend;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{
    KeyedStateBackend, ListState, ListStateDescriptor, MapState, MapStateDescriptor,
    MaxParallelism, Result, StateEngine, ValueState, ValueStateDescriptor,
};
use std::hint::black_box;

const KEYS: u64 = 10_000;
/// Operations counted; the script divides by this.
pub const OPERATIONS: u64 = 100_000;
/// Records per call of the batch operations, as in the benchmark workload.
const BATCH: usize = 1_000;
/// User keys per map, as in the benchmark workload.
const USER_KEYS: u64 = 10;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (engine, op) = (args.next(), args.next());
    let (Some(engine), Some(op)) = (engine, op) else {
        eprintln!(
            "usage: instructions <heap|rocksdb> <valueGet|valueUpdate|valueGetBatch|\
             valueUpdateBatch|listGet|listAppend|listAppendBatch|mapGet|mapUpdate|mapGetBatch>"
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

/// The states of the operations; each operation fills and uses one.
struct States<E: StateEngine> {
    value: ValueState<u64, E>,
    list: ListState<u64, E>,
    map: MapState<u64, f64, E>,
}

fn measure<E: StateEngine>(backend: KeyedStateBackend<E>, op: &str) -> Result<()> {
    let states = States {
        value: backend.value_state(&ValueStateDescriptor::<u64>::new("value"))?,
        list: backend.list_state(&ListStateDescriptor::<u64>::new("list"))?,
        map: backend.map_state(&MapStateDescriptor::<u64, f64>::new("map"))?,
    };
    for key in 0..KEYS {
        backend.set_current_key(&key)?;
        match op {
            "listGet" | "listAppend" | "listAppendBatch" => states.list.add(&key)?,
            "mapGet" | "mapUpdate" | "mapGetBatch" => {
                for user_key in 0..USER_KEYS {
                    states.map.put(&user_key, &(key as f64))?;
                }
            }
            _ => states.value.update(&key)?,
        }
    }
    // One untimed visit brings every key (and RocksDB's blocks) into cache.
    timed_ops_uncounted(&backend, &states, op)?;
    timed_ops(&backend, &states, op)?;
    backend.close()
}

fn timed_ops_uncounted<E: StateEngine>(
    b: &KeyedStateBackend<E>,
    s: &States<E>,
    op: &str,
) -> Result<()> {
    run(b, s, op, KEYS)
}

#[inline(never)]
fn timed_ops<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, op: &str) -> Result<()> {
    run(b, s, op, OPERATIONS)
}

/// Runs `n` operations of `op`, each kind of operation in a function of its own, so that the
/// code of one does not change how the compiler lays out another's loop.
#[inline(always)]
fn run<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, op: &str, n: u64) -> Result<()> {
    match op {
        "valueGet" => value_get(b, s, n),
        "valueUpdate" => value_update(b, s, n),
        "valueGetBatch" => value_get_batch(s, n),
        "valueUpdateBatch" => value_update_batch(s, n),
        "listGet" => list_get(b, s, n),
        "listAppend" => list_append(b, s, n),
        "listAppendBatch" => list_append_batch(s, n),
        "mapGet" => map_get(b, s, n),
        "mapUpdate" => map_update(b, s, n),
        "mapGetBatch" => map_get_batch(s, n),
        other => {
            eprintln!("unknown operation '{other}'");
            std::process::exit(2);
        }
    }
}

/// A fixed stride through the keys, so consecutive operations touch unrelated slots.
fn strided() -> impl FnMut() -> u64 {
    let mut key = 0u64;
    move || {
        key = (key + 7919) % KEYS;
        key
    }
}

/// Runs `op` on `n` keys of the stride, each set as the current key first: the loop of the
/// per-record operations, inlined into each one's own function.
#[inline(always)]
fn each_key<E: StateEngine>(
    b: &KeyedStateBackend<E>,
    n: u64,
    mut op: impl FnMut(u64) -> Result<()>,
) -> Result<()> {
    let mut next = strided();
    for _ in 0..n {
        let key = next();
        b.set_current_key(&key)?;
        op(key)?;
    }
    Ok(())
}

/// Runs `op` on `n / BATCH` batches of `BATCH` keys of the stride: the loop of the batch
/// calls.
#[inline(always)]
fn each_batch(n: u64, mut op: impl FnMut(&[u64]) -> Result<()>) -> Result<()> {
    let mut next = strided();
    let mut keys = Vec::with_capacity(BATCH);
    for _ in 0..n / BATCH as u64 {
        keys.clear();
        keys.extend((0..BATCH).map(|_| next()));
        op(&keys)?;
    }
    Ok(())
}

#[inline(never)]
fn value_get<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    each_key(b, n, |_| s.value.get().map(black_box).map(drop))
}

#[inline(never)]
fn value_update<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    each_key(b, n, |key| s.value.update(&(key + 1)))
}

#[inline(never)]
fn value_get_batch<E: StateEngine>(s: &States<E>, n: u64) -> Result<()> {
    each_batch(n, |keys| s.value.get_batch(keys).map(black_box).map(drop))
}

#[inline(never)]
fn value_update_batch<E: StateEngine>(s: &States<E>, n: u64) -> Result<()> {
    let mut entries = Vec::with_capacity(BATCH);
    each_batch(n, |keys| {
        entries.clear();
        entries.extend(keys.iter().map(|&k| (k, k + 1)));
        s.value.update_batch(&entries)
    })
}

#[inline(never)]
fn list_get<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    let mut elements = Vec::new();
    each_key(b, n, |_| {
        s.list.get_into(&mut elements)?;
        black_box(elements.iter().sum::<u64>());
        Ok(())
    })
}

#[inline(never)]
fn list_append<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    each_key(b, n, |key| s.list.add(&key))
}

#[inline(never)]
fn list_append_batch<E: StateEngine>(s: &States<E>, n: u64) -> Result<()> {
    let mut entries = Vec::with_capacity(BATCH);
    each_batch(n, |keys| {
        entries.clear();
        entries.extend(keys.iter().map(|&k| (k, k)));
        s.list.add_batch(&entries)
    })
}

#[inline(never)]
fn map_get<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    each_key(b, n, |key| {
        s.map.get(&(key % USER_KEYS)).map(black_box).map(drop)
    })
}

#[inline(never)]
fn map_update<E: StateEngine>(b: &KeyedStateBackend<E>, s: &States<E>, n: u64) -> Result<()> {
    each_key(b, n, |key| {
        s.map.put(&(key % USER_KEYS), &(key as f64 + 0.5))
    })
}

#[inline(never)]
fn map_get_batch<E: StateEngine>(s: &States<E>, n: u64) -> Result<()> {
    let mut lookups = Vec::with_capacity(BATCH);
    each_batch(n, |keys| {
        lookups.clear();
        lookups.extend(keys.iter().map(|&k| (k, k % USER_KEYS)));
        s.map.get_batch(&lookups).map(black_box).map(drop)
    })
}
