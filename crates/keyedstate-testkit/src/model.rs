//! A reference model (`BTreeMap`s) run side by side with a backend under random operations.
//!
//! Each case is driven by a seed; a mismatch panics with the seed and the operation number, and
//! `KEYEDSTATE_SEED=<seed>` reruns exactly that case.

use crate::fixture::{Factory, full_at};
use crate::states::Average;
use keyedstate_core::{
    AggregatingState, AggregatingStateDescriptor, KeyedStateBackend, ListState,
    ListStateDescriptor, MapState, MapStateDescriptor, MaxParallelism, ReducingState,
    ReducingStateDescriptor, Result, StateBackend, StateEngine, ValueState, ValueStateDescriptor,
};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// splitmix64: small, seedable, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `out` with random bytes (incompressible values for size tests).
    pub fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

type Slot = (u64, u8);

#[derive(Default)]
struct Model {
    value: BTreeMap<Slot, u64>,
    list: BTreeMap<Slot, Vec<u32>>,
    map: BTreeMap<Slot, BTreeMap<u8, u32>>,
    sum: BTreeMap<Slot, u64>,
    avg: BTreeMap<Slot, (u64, u64)>,
}

struct States<E: StateEngine + ?Sized = dyn StateBackend> {
    value: ValueState<u64, E>,
    list: ListState<u32, E>,
    map: MapState<u8, u32, E>,
    sum: ReducingState<u64, E>,
    avg: AggregatingState<Average, E>,
}

impl<E: StateEngine + ?Sized> States<E> {
    fn register(backend: &KeyedStateBackend<E>) -> Result<Self> {
        Ok(States {
            value: backend.value_state(&ValueStateDescriptor::new("value"))?,
            list: backend.list_state(&ListStateDescriptor::new("list"))?,
            map: backend.map_state(&MapStateDescriptor::new("map"))?,
            sum: backend
                .reducing_state(&ReducingStateDescriptor::new("sum", |a: &u64, b: &u64| {
                    a.wrapping_add(*b)
                }))?,
            avg: backend.aggregating_state(&AggregatingStateDescriptor::new("avg", Average))?,
        })
    }

    fn set_namespace(&mut self, ns: u8) -> Result<()> {
        self.value.set_namespace(&ns)?;
        self.list.set_namespace(&ns)?;
        self.map.set_namespace(&ns)?;
        self.sum.set_namespace(&ns)?;
        self.avg.set_namespace(&ns)
    }
}

const KEYS: u64 = 24;
const NAMESPACES: u64 = 3;
const OPS_PER_CASE: usize = 400;

/// Compares two results, failing the case with `what` when they differ.
pub(crate) fn same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    backend: T,
    model: T,
) -> std::result::Result<(), String> {
    if backend == model {
        Ok(())
    } else {
        Err(format!("{what}: backend gave {backend:?}, model {model:?}"))
    }
}

/// Alternates 1- and 2-byte key-group prefixes.
fn max_parallelism_of_case(seed: u64) -> u32 {
    if seed.is_multiple_of(2) { 128 } else { 129 }
}

fn run_case(factory: &Factory, seed: u64) -> std::result::Result<(), String> {
    let instance = full_at(factory, max_parallelism_of_case(seed));
    run_case_on(&instance.backend, seed)
}

fn run_case_on<E: StateEngine + ?Sized>(
    backend: &KeyedStateBackend<E>,
    seed: u64,
) -> std::result::Result<(), String> {
    let mut rng = Rng::new(seed);
    let err = |e: keyedstate_core::Error| e.to_string();
    let mut states = States::register(backend).map_err(err)?;
    let mut model = Model::default();
    let mut slot: Slot = (0, 0);
    backend.set_current_key(&0u64).map_err(err)?;
    states.set_namespace(0).map_err(err)?;
    for op in 0..OPS_PER_CASE {
        let at = |what: &str| format!("op {op} {what} at key {} namespace {}", slot.0, slot.1);
        let x = rng.below(1000);
        match rng.below(22) {
            0 => {
                slot.0 = rng.below(KEYS);
                backend.set_current_key(&slot.0).map_err(err)?;
            }
            1 => {
                slot.1 = rng.below(NAMESPACES) as u8;
                states.set_namespace(slot.1).map_err(err)?;
            }
            2 => {
                states.value.update(&x).map_err(err)?;
                model.value.insert(slot, x);
            }
            3 => {
                states.value.clear().map_err(err)?;
                model.value.remove(&slot);
            }
            4 => same(
                &at("value get"),
                states.value.get().map_err(err)?,
                model.value.get(&slot).copied(),
            )?,
            5 => {
                states.list.add(&(x as u32)).map_err(err)?;
                model.list.entry(slot).or_default().push(x as u32);
            }
            6 => {
                let elements: Vec<u32> = (0..rng.below(4)).map(|_| rng.below(100) as u32).collect();
                if rng.below(2) == 0 {
                    states.list.add_all(&elements).map_err(err)?;
                    if !elements.is_empty() {
                        model.list.entry(slot).or_default().extend(&elements);
                    }
                } else {
                    states.list.update(&elements).map_err(err)?;
                    if elements.is_empty() {
                        model.list.remove(&slot);
                    } else {
                        model.list.insert(slot, elements);
                    }
                }
            }
            7 => {
                states.list.clear().map_err(err)?;
                model.list.remove(&slot);
            }
            8 => same(
                &at("list get"),
                states.list.get().map_err(err)?,
                model.list.get(&slot).cloned().unwrap_or_default(),
            )?,
            9 => {
                let user_key = rng.below(6) as u8;
                states.map.put(&user_key, &(x as u32)).map_err(err)?;
                model
                    .map
                    .entry(slot)
                    .or_default()
                    .insert(user_key, x as u32);
            }
            10 => {
                let user_key = rng.below(6) as u8;
                states.map.remove(&user_key).map_err(err)?;
                if let Some(m) = model.map.get_mut(&slot) {
                    m.remove(&user_key);
                    if m.is_empty() {
                        model.map.remove(&slot);
                    }
                }
            }
            11 => {
                let user_key = rng.below(6) as u8;
                let expected = model.map.get(&slot).and_then(|m| m.get(&user_key)).copied();
                same(
                    &at("map get"),
                    states.map.get(&user_key).map_err(err)?,
                    expected,
                )?;
                same(
                    &at("map contains"),
                    states.map.contains(&user_key).map_err(err)?,
                    expected.is_some(),
                )?;
            }
            12 => {
                let expected: Vec<(u8, u32)> = model
                    .map
                    .get(&slot)
                    .map(|m| m.clone().into_iter().collect())
                    .unwrap_or_default();
                // In the order of the user keys' bytes (a u8 is one byte: numeric order), as
                // RocksDB keeps them and the heap iterates them.
                let entries = states.map.entries().map_err(err)?;
                same(&at("map entries in order"), entries, expected.clone())?;
                let keys: Vec<u8> = expected.iter().map(|(k, _)| *k).collect();
                same(
                    &at("map keys in order"),
                    states.map.keys().map_err(err)?,
                    keys,
                )?;
                same(
                    &at("map is_empty"),
                    states.map.is_empty().map_err(err)?,
                    expected.is_empty(),
                )?;
            }
            13 => {
                states.map.clear().map_err(err)?;
                model.map.remove(&slot);
            }
            14 => {
                states.sum.add(&x).map_err(err)?;
                *model.sum.entry(slot).or_default() += x;
            }
            15 => same(
                &at("reducing get"),
                states.sum.get().map_err(err)?,
                model.sum.get(&slot).copied(),
            )?,
            16 => {
                states.avg.add(&x).map_err(err)?;
                let acc = model.avg.entry(slot).or_default();
                *acc = (acc.0 + x, acc.1 + 1);
            }
            17 => {
                let expected = model.avg.get(&slot).map(|acc| Average.result_of(acc));
                same(
                    &at("aggregating get"),
                    states.avg.get().map_err(err)?,
                    expected,
                )?;
            }
            18 => {
                if rng.below(2) == 0 {
                    states.sum.clear().map_err(err)?;
                    model.sum.remove(&slot);
                } else {
                    states.avg.clear().map_err(err)?;
                    model.avg.remove(&slot);
                }
            }
            20 => {
                // The value batch calls over random keys (repeats included) in the current
                // namespace: later entries of a key win.
                let keys: Vec<u64> = (0..rng.below(6)).map(|_| rng.below(KEYS)).collect();
                let entries: Vec<(u64, u64)> = keys.iter().map(|&k| (k, rng.below(1000))).collect();
                states.value.update_batch(&entries).map_err(err)?;
                for &(k, v) in &entries {
                    model.value.insert((k, slot.1), v);
                }
                let expected: Vec<Option<u64>> = keys
                    .iter()
                    .map(|&k| model.value.get(&(k, slot.1)).copied())
                    .collect();
                same(
                    &at("value get_batch"),
                    states.value.get_batch(&keys).map_err(err)?,
                    expected,
                )?;
            }
            21 => {
                // The list and map batch calls, likewise.
                let keys: Vec<u64> = (0..rng.below(6)).map(|_| rng.below(KEYS)).collect();
                let appends: Vec<(u64, u32)> =
                    keys.iter().map(|&k| (k, rng.below(100) as u32)).collect();
                states.list.add_batch(&appends).map_err(err)?;
                for &(k, v) in &appends {
                    model.list.entry((k, slot.1)).or_default().push(v);
                }
                let expected: Vec<Vec<u32>> = keys
                    .iter()
                    .map(|&k| model.list.get(&(k, slot.1)).cloned().unwrap_or_default())
                    .collect();
                same(
                    &at("list get_batch"),
                    states.list.get_batch(&keys).map_err(err)?,
                    expected,
                )?;
                let puts: Vec<(u64, u8, u32)> = keys
                    .iter()
                    .map(|&k| (k, rng.below(6) as u8, rng.below(1000) as u32))
                    .collect();
                states.map.put_batch(&puts).map_err(err)?;
                for &(k, uk, v) in &puts {
                    model.map.entry((k, slot.1)).or_default().insert(uk, v);
                }
                let lookups: Vec<(u64, u8)> =
                    keys.iter().map(|&k| (k, rng.below(6) as u8)).collect();
                let expected: Vec<Option<u32>> = lookups
                    .iter()
                    .map(|&(k, uk)| {
                        model
                            .map
                            .get(&(k, slot.1))
                            .and_then(|m| m.get(&uk))
                            .copied()
                    })
                    .collect();
                same(
                    &at("map get_batch"),
                    states.map.get_batch(&lookups).map_err(err)?,
                    expected,
                )?;
            }
            _ => {
                // Session-window merge of another namespace into the current one.
                let source = rng.below(NAMESPACES) as u8;
                if source != slot.1 {
                    let (target, from) = (slot, (slot.0, source));
                    states
                        .list
                        .merge_namespaces(&slot.1, &[source])
                        .map_err(err)?;
                    if let Some(moved) = model.list.remove(&from) {
                        model.list.entry(target).or_default().extend(moved);
                    }
                    states
                        .sum
                        .merge_namespaces(&slot.1, &[source])
                        .map_err(err)?;
                    if let Some(moved) = model.sum.remove(&from) {
                        *model.sum.entry(target).or_default() += moved;
                    }
                }
            }
        }
    }
    check_keys(backend, &model)
}

/// Key iteration of every state and namespace agrees with the model.
fn check_keys<E: StateEngine + ?Sized>(
    backend: &KeyedStateBackend<E>,
    model: &Model,
) -> std::result::Result<(), String> {
    fn keys_in<V>(m: &BTreeMap<Slot, V>, ns: u8) -> BTreeSet<u64> {
        m.keys().filter(|s| s.1 == ns).map(|s| s.0).collect()
    }
    for ns in 0..NAMESPACES as u8 {
        for (state, expected) in [
            ("value", keys_in(&model.value, ns)),
            ("list", keys_in(&model.list, ns)),
            ("map", keys_in(&model.map, ns)),
            ("sum", keys_in(&model.sum, ns)),
            ("avg", keys_in(&model.avg, ns)),
        ] {
            let keys: Vec<u64> = backend.keys(state, &ns).map_err(|e| e.to_string())?;
            let unique: BTreeSet<u64> = keys.iter().copied().collect();
            same(
                &format!("keys of {state} in namespace {ns} are distinct"),
                unique.len(),
                keys.len(),
            )?;
            same(
                &format!("keys of {state} in namespace {ns}"),
                unique,
                expected,
            )?;
        }
    }
    Ok(())
}

impl Average {
    fn result_of(&self, acc: &(u64, u64)) -> f64 {
        use keyedstate_core::AggregateFunction;
        self.result(acc)
    }
}

/// Runs 64 seeded cases (or the one in `KEYEDSTATE_SEED`) against the model.
pub fn random_operations_match_the_model(factory: &Factory) {
    run_cases(|seed| run_case(factory, seed));
}

/// The same cases on backends whose engine type is known at compile time
/// ([`KeyedStateBackend::new_typed`]): `open` opens an empty one holding every key group of
/// the max parallelism it is given (and its closing is the caller's: the backend is dropped).
pub fn random_operations_on_a_typed_backend_match_the_model<E: StateEngine>(
    open: impl Fn(MaxParallelism) -> KeyedStateBackend<E>,
) {
    run_cases(|seed| {
        let max_p =
            MaxParallelism::new(max_parallelism_of_case(seed)).map_err(|e| e.to_string())?;
        let backend = open(max_p);
        let outcome = run_case_on(&backend, seed);
        backend.close().map_err(|e| e.to_string())?;
        outcome
    });
}

fn run_cases(case: impl Fn(u64) -> std::result::Result<(), String>) {
    let seeds: Vec<u64> = match std::env::var("KEYEDSTATE_SEED") {
        Ok(seed) => vec![seed.parse().expect("KEYEDSTATE_SEED must be a u64")],
        Err(_) => (0..64).map(|case| 0x6b65_7965_6473_7461 ^ case).collect(),
    };
    for seed in seeds {
        let outcome = catch_unwind(AssertUnwindSafe(|| case(seed)));
        let failure = match outcome {
            Ok(Ok(())) => continue,
            Ok(Err(message)) => message,
            Err(panic) => panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into()),
        };
        panic!("model mismatch with seed {seed}: {failure}\nreproduce with KEYEDSTATE_SEED={seed}");
    }
}
