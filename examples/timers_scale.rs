//! Registering and firing timers costs the same per timer at 100,000 and at 1,000,000 timers,
//! on both engines (issue: RocksDB pops used to walk over the tombstones of every timer fired
//! before them, so the cost per timer grew with their number):
//!
//! ```sh
//! cargo run --release --example timers_scale -- [small, default 100000] [large, default 1000000]
//! ```
//!
//! Each run registers N event-time timers for N keys (timestamps drawn at random, max
//! parallelism 128, one subtask holding every key group), then fires them all with one
//! `advance`. It prints the time per timer of both phases and the ratio large / small; each
//! figure is the median of three runs. The `btreeset` rows are the baseline: the same timers in
//! a plain `BTreeSet<(i64, u64)>`, whose own ratio is what the memory hierarchy charges for the
//! larger set (100,000 timers fit in the caches, 1,000,000 do not).

use keyedstate::heap::HeapBackend;
use keyedstate::rocksdb::{RocksDbBackend, RocksDbConfig};
use keyedstate::{KeyedStateBackend, MaxParallelism, Result, TimeDomain};
use keyedstate_testkit::model::Rng;
use std::time::Instant;

/// Nanoseconds per timer to register and to fire `n` timers.
fn run(engine: &str, n: u64) -> Result<(f64, f64)> {
    if engine == "btreeset" {
        return Ok(baseline(n));
    }
    let max_p = MaxParallelism::new(128)?;
    let dir = tempfile::tempdir().expect("temporary directory");
    let backend: KeyedStateBackend = match engine {
        "heap" => HeapBackend::open(max_p, max_p.full_range())?,
        _ => RocksDbBackend::open(RocksDbConfig::new(
            dir.path().join("db"),
            max_p,
            max_p.full_range(),
        ))?,
    };
    let timers = backend.timer_service()?;
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let started = Instant::now();
    for key in 0..n {
        backend.set_current_key(&key)?;
        timers.register(TimeDomain::EventTime, &(), rng.below(1_000_000_000) as i64)?;
    }
    let registered = started.elapsed();
    let started = Instant::now();
    let fired = timers.advance(TimeDomain::EventTime, i64::MAX, |_| Ok(()))?;
    let firing = started.elapsed();
    assert_eq!(fired as u64, n);
    backend.close()?;
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    Ok((per(registered), per(firing)))
}

/// The same timestamps and keys inserted into, then popped in order from, one
/// `std::collections::BTreeSet<(i64, u64)>`: the cost any ordered structure pays as its size
/// outgrows the processor's caches, with no engine around it.
fn baseline(n: u64) -> (f64, f64) {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut set = std::collections::BTreeSet::new();
    let started = Instant::now();
    for key in 0..n {
        set.insert((rng.below(1_000_000_000) as i64, key));
    }
    let registered = started.elapsed();
    let started = Instant::now();
    let mut fired = 0u64;
    while let Some(timer) = set.pop_first() {
        fired += 1;
        std::hint::black_box(timer);
    }
    let firing = started.elapsed();
    assert_eq!(fired, n);
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    (per(registered), per(firing))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<u64>().expect("a number"));
    let small = args.next().unwrap_or(100_000);
    let large = args.next().unwrap_or(1_000_000);
    println!("engine\ttimers\tregister_ns\tfire_ns");
    for engine in ["rocksdb", "heap", "btreeset"] {
        let mut figures = Vec::new();
        for n in [small, large] {
            let runs: Vec<(f64, f64)> = (0..3).map(|_| run(engine, n)).collect::<Result<_>>()?;
            let register = median(runs.iter().map(|r| r.0).collect());
            let fire = median(runs.iter().map(|r| r.1).collect());
            println!("{engine}\t{n}\t{register:.0}\t{fire:.0}");
            figures.push((register, fire));
        }
        println!(
            "{engine}\tratio {large} / {small}: register {:.2}, fire {:.2}",
            figures[1].0 / figures[0].0,
            figures[1].1 / figures[0].1
        );
    }
    Ok(())
}
