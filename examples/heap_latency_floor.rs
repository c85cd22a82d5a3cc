//! Why the heap backend's value state stays well above 1.5x the time of a `HashMap<u64, u64>`
//! at 500,000 keys, measured rather than argued:
//!
//! ```sh
//! cargo run --release --example heap_latency_floor -- [keys, default 500000]
//! ```
//!
//! A random lookup in a table larger than the caches waits for a cache miss. A bare `HashMap`
//! get is a few dozen instructions, so the processor starts the next lookups while the first
//! one's miss is outstanding, and the misses overlap. An operation of several hundred
//! instructions (lock, serialize the key, hash it to its key group, look up, decode) is longer
//! than the processor's reorder window: its miss cannot overlap the next operation's, and every
//! operation pays the whole latency.
//!
//! The program shows it by giving the `HashMap` as much unrelated work per lookup as the heap
//! backend's `set_current_key` + `ValueState::get` costs when everything is in cache (10,000
//! keys), then timing both at the large size. Each figure is the median of three runs.

use keyedstate::heap::HeapBackend;
use keyedstate::{KeyedStateBackend, MaxParallelism, Result, ValueState, ValueStateDescriptor};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

const SMALL: u64 = 10_000;
/// Operations per measurement, whatever the key count.
const OPERATIONS: usize = 2_000_000;

fn main() -> Result<()> {
    let large: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("keys as a number"))
        .unwrap_or(500_000);
    let mut rows = Vec::new();
    let small = Size::new(SMALL)?;
    let big = Size::new(large)?;

    // The heap operation's cost in cache, and as many steps of work as make the HashMap's
    // lookup cost the same at 10,000 keys.
    let heap_small = small.heap_get();
    let map_small = small.map_get(0);
    let (steps, matched_small) = small.steps_matching(heap_small, map_small);
    // The same for `set_current_key` alone: the part of every operation no state layout avoids.
    let key_small = small.set_key();
    let (key_steps, _) = small.steps_matching(key_small + map_small, map_small);

    rows.push(("HashMap<u64, u64>::get", map_small, big.map_get(0)));
    rows.push((
        "HashMap get + work of set_current_key",
        small.map_get(key_steps),
        big.map_get(key_steps),
    ));
    rows.push((
        "HashMap get + unrelated work",
        matched_small,
        big.map_get(steps),
    ));
    rows.push((
        "heap set_current_key + ValueState::get",
        heap_small,
        big.heap_get(),
    ));

    println!("nanoseconds per operation (median of 3), {SMALL} and {large} keys");
    println!("{:<40}{:>12}{:>14}", "", SMALL, large);
    for (name, at_small, at_large) in &rows {
        println!("{name:<40}{at_small:>12.1}{at_large:>14.1}");
    }
    println!(
        "unrelated work: {steps} steps ({key_steps} for set_current_key) of a dependent \
         multiply-rotate chain"
    );
    let (map, matched, heap) = (rows[0].2, rows[2].2, rows[3].2);
    println!(
        "at {large} keys: heap / HashMap {:.2}; (HashMap + the same work) / HashMap {:.2}; \
         heap / (HashMap + the same work) {:.2}",
        heap / map,
        matched / map,
        heap / matched
    );
    Ok(())
}

/// One key count: its shuffled order, a heap backend and a `HashMap` holding every key.
struct Size {
    order: Vec<u64>,
    backend: KeyedStateBackend,
    value: ValueState<u64>,
    map: HashMap<u64, u64>,
}

impl Size {
    fn new(keys: u64) -> Result<Size> {
        let max_p = MaxParallelism::new(2)?;
        let backend = HeapBackend::open(max_p, max_p.full_range())?;
        let value = backend.value_state(&ValueStateDescriptor::<u64>::new("value"))?;
        let order = shuffled(keys);
        for &key in &order {
            backend.set_current_key(&key)?;
            value.update(&key)?;
        }
        let map = order.iter().map(|&k| (k, k)).collect();
        Ok(Size {
            order,
            backend,
            value,
            map,
        })
    }

    fn set_key(&self) -> f64 {
        median_ns(&self.order, |key| {
            self.backend.set_current_key(&key).expect("key in range");
        })
    }

    fn heap_get(&self) -> f64 {
        median_ns(&self.order, |key| {
            self.backend.set_current_key(&key).expect("key in range");
            black_box(self.value.get().expect("readable"));
        })
    }

    /// The number of work steps after which a `HashMap` get takes `target` ns (within 3%, or
    /// the closest of eight tries; `bare` is the get without work), and the time it took.
    fn steps_matching(&self, target: f64, bare: f64) -> (u32, f64) {
        let per_step = (self.map_get(1000) - bare) / 1000.0;
        let mut steps = ((target - bare) / per_step).round().max(1.0);
        let mut best = (steps as u32, f64::INFINITY);
        for _ in 0..8 {
            let took = self.map_get(steps as u32);
            if (took - target).abs() < (best.1 - target).abs() {
                best = (steps as u32, took);
            }
            if (took - target).abs() <= 0.03 * target {
                break;
            }
            // The work overlaps the lookup in part, so its cost is not linear: rescale.
            steps = (steps * (target - bare) / (took - bare).max(0.1))
                .round()
                .max(1.0);
        }
        best
    }

    /// A `HashMap` get followed by `steps` steps of work that does not depend on it.
    fn map_get(&self, steps: u32) -> f64 {
        median_ns(&self.order, |key| {
            black_box(self.map.get(&key));
            let mut x = key;
            for _ in 0..steps {
                x = black_box(x.wrapping_mul(31).rotate_left(7));
            }
            black_box(x);
        })
    }
}

/// The median over three runs of the time per call of `op`, called with the keys in `order`
/// (cycled) `OPERATIONS` times after one untimed pass.
fn median_ns(order: &[u64], mut op: impl FnMut(u64)) -> f64 {
    order.iter().for_each(|&k| op(k));
    let mut runs: Vec<f64> = (0..3)
        .map(|_| {
            let started = Instant::now();
            order.iter().cycle().take(OPERATIONS).for_each(|&k| op(k));
            started.elapsed().as_nanos() as f64 / OPERATIONS as f64
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// The keys `0..keys` in a fixed shuffled order (Fisher-Yates with splitmix64).
fn shuffled(keys: u64) -> Vec<u64> {
    let mut state = 42u64;
    let mut order: Vec<u64> = (0..keys).collect();
    for i in (1..order.len()).rev() {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        order.swap(i, ((z ^ (z >> 31)) % (i as u64 + 1)) as usize);
    }
    order
}
