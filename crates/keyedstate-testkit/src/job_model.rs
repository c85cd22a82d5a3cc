//! The randomized job test: a keyed job of several subtasks run side by side with a `BTreeMap`
//! model of its state, under a seeded schedule of
//! - records for random keys, each on the subtask owning the key's group, that register states
//!   lazily (a subtask registers a state on its first record for it, so subtasks hold random
//!   subsets), with every state kind, namespaces and event- and processing-time timers;
//! - checkpoints of both kinds, aborted checkpoints, firing timers;
//! - restores of the latest or of an older retained checkpoint, at random parallelisms (1 to
//!   max parallelism, up and down), in both restore modes;
//! - offline rescales into a new root (as `keyedstate rescale`), themselves rescaled later.
//!
//! After every restore every key's state, on the subtask owning it, equals the model's at the
//! restored checkpoint; no subtask holds an entry outside its key groups. A divergence names the
//! seed; `KEYEDSTATE_SEED=<seed>` reruns that schedule alone.

use crate::model::{Rng, same};
use crate::states::Average;
use keyedstate_core::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, RestoreMode, load_metadata,
};
use keyedstate_core::codec;
use keyedstate_core::{
    AggregatingState, AggregatingStateDescriptor, KeyedStateBackend, ListState,
    ListStateDescriptor, MapState, MapStateDescriptor, MaxParallelism, ReducingState,
    ReducingStateDescriptor, Result, SnapshotKind, TimeDomain, TimerService, ValueState,
    ValueStateDescriptor, job,
};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

/// An engine the job test runs on: it opens and restores subtasks and makes checkpoint roots.
pub trait JobEngine {
    /// The snapshot kinds a schedule may ask for.
    fn kinds(&self) -> &[SnapshotKind];

    /// A new, empty checkpoint root.
    fn new_root(&self) -> Arc<dyn CheckpointStorage>;

    /// A new, empty backend for subtask `index` of `parallelism`.
    fn open(
        &self,
        max_parallelism: MaxParallelism,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend>;

    /// Subtask `index` of `parallelism`, restored from `metadata`.
    fn restore(
        &self,
        metadata: &CheckpointMetadata,
        storage: &Arc<dyn CheckpointStorage>,
        parallelism: u32,
        index: u32,
    ) -> Result<KeyedStateBackend>;
}

const KEYS: u64 = 40;
const NAMESPACES: u64 = 3;
const USER_KEYS: u64 = 5;
const STATES: [&str; 5] = ["v", "l", "m", "r", "a"];
const MAX_PARALLELISMS: [u32; 5] = [1, 3, 16, 128, 129];

type Slot = (u64, u8);

/// The job's state as it should be.
#[derive(Clone, Default, PartialEq, Debug)]
struct Model {
    value: BTreeMap<Slot, u64>,
    list: BTreeMap<Slot, Vec<u32>>,
    map: BTreeMap<Slot, BTreeMap<u8, u32>>,
    sum: BTreeMap<Slot, u64>,
    avg: BTreeMap<Slot, (u64, u64)>,
    /// (domain: 0 event time, 1 processing time; timestamp; key; namespace).
    timers: BTreeSet<(u8, i64, u64, u8)>,
}

impl Model {
    /// Logical entries of the user states (a map counts one per user key).
    fn entries(&self) -> usize {
        self.value.len()
            + self.list.len()
            + self.map.values().map(BTreeMap::len).sum::<usize>()
            + self.sum.len()
            + self.avg.len()
    }

    fn has(&self, state: &str, key: u64) -> bool {
        let of_key = |slot: &Slot| slot.0 == key;
        match state {
            "v" => self.value.keys().any(of_key),
            "l" => self.list.keys().any(of_key),
            "m" => self.map.keys().any(of_key),
            "r" => self.sum.keys().any(of_key),
            _ => self.avg.keys().any(of_key),
        }
    }
}

fn domain(d: u8) -> TimeDomain {
    if d == 0 {
        TimeDomain::EventTime
    } else {
        TimeDomain::ProcessingTime
    }
}

/// One subtask's backend and the handles it registered so far (lazily).
struct Subtask {
    backend: KeyedStateBackend,
    value: Option<ValueState<u64>>,
    list: Option<ListState<u32>>,
    map: Option<MapState<u8, u32>>,
    sum: Option<ReducingState<u64>>,
    avg: Option<AggregatingState<Average>>,
    timers: Option<TimerService>,
}

fn sum(a: &u64, b: &u64) -> u64 {
    a.wrapping_add(*b)
}

impl Subtask {
    fn new(backend: KeyedStateBackend) -> Self {
        Subtask {
            backend,
            value: None,
            list: None,
            map: None,
            sum: None,
            avg: None,
            timers: None,
        }
    }

    fn registered(&self, name: &str) -> bool {
        self.backend
            .states()
            .unwrap()
            .iter()
            .any(|m| m.name == name)
    }

    fn value(&mut self) -> Result<&mut ValueState<u64>> {
        if self.value.is_none() {
            self.value = Some(self.backend.value_state(&ValueStateDescriptor::new("v"))?);
        }
        Ok(self.value.as_mut().expect("registered"))
    }

    fn list(&mut self) -> Result<&mut ListState<u32>> {
        if self.list.is_none() {
            self.list = Some(self.backend.list_state(&ListStateDescriptor::new("l"))?);
        }
        Ok(self.list.as_mut().expect("registered"))
    }

    fn map(&mut self) -> Result<&mut MapState<u8, u32>> {
        if self.map.is_none() {
            self.map = Some(self.backend.map_state(&MapStateDescriptor::new("m"))?);
        }
        Ok(self.map.as_mut().expect("registered"))
    }

    fn sum(&mut self) -> Result<&mut ReducingState<u64>> {
        if self.sum.is_none() {
            self.sum = Some(
                self.backend
                    .reducing_state(&ReducingStateDescriptor::new("r", sum))?,
            );
        }
        Ok(self.sum.as_mut().expect("registered"))
    }

    fn avg(&mut self) -> Result<&mut AggregatingState<Average>> {
        if self.avg.is_none() {
            self.avg = Some(
                self.backend
                    .aggregating_state(&AggregatingStateDescriptor::new("a", Average))?,
            );
        }
        Ok(self.avg.as_mut().expect("registered"))
    }

    fn timers(&mut self) -> Result<&TimerService> {
        if self.timers.is_none() {
            self.timers = Some(self.backend.timer_service()?);
        }
        Ok(self.timers.as_ref().expect("registered"))
    }
}

/// A checkpoint the schedule may restore: where it is, and the model it holds.
struct Taken {
    storage: Arc<dyn CheckpointStorage>,
    metadata: CheckpointMetadata,
    model: Model,
}

struct Job<'e> {
    engine: &'e dyn JobEngine,
    max_p: MaxParallelism,
    subtasks: Vec<Subtask>,
    storage: Arc<dyn CheckpointStorage>,
    coordinator: CheckpointCoordinator,
    retained: usize,
    model: Model,
    taken: Vec<Taken>,
    /// The time each domain has been advanced to: timers at or before it have fired.
    fired_until: [i64; 2],
    log: Vec<String>,
}

fn err(e: keyedstate_core::Error) -> String {
    e.to_string()
}

impl Job<'_> {
    fn owner(&self, key: u64) -> usize {
        let mut bytes = Vec::new();
        codec::encode(&key, &mut bytes).expect("a u64 encodes");
        let group = self.max_p.key_group_of(&bytes);
        self.max_p
            .subtask_of(group, self.subtasks.len() as u32)
            .expect("a valid parallelism") as usize
    }

    /// One record: a random operation on a random state of `key` in `ns`.
    fn record(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let key = rng.below(KEYS);
        let ns = rng.below(NAMESPACES) as u8;
        let x = rng.below(1000);
        let slot = (key, ns);
        let owner = self.owner(key);
        let s = &mut self.subtasks[owner];
        s.backend.set_current_key(&key).map_err(err)?;
        let m = &mut self.model;
        match rng.below(16) {
            0 => {
                let v = s.value().map_err(err)?;
                v.set_namespace(&ns).map_err(err)?;
                v.update(&x).map_err(err)?;
                m.value.insert(slot, x);
            }
            1 => {
                let v = s.value().map_err(err)?;
                v.set_namespace(&ns).map_err(err)?;
                v.clear().map_err(err)?;
                m.value.remove(&slot);
            }
            2 | 3 => {
                let l = s.list().map_err(err)?;
                l.set_namespace(&ns).map_err(err)?;
                l.add(&(x as u32)).map_err(err)?;
                m.list.entry(slot).or_default().push(x as u32);
            }
            4 => {
                let elements: Vec<u32> = (0..rng.below(3)).map(|_| rng.below(50) as u32).collect();
                let l = s.list().map_err(err)?;
                l.set_namespace(&ns).map_err(err)?;
                l.update(&elements).map_err(err)?;
                if elements.is_empty() {
                    m.list.remove(&slot);
                } else {
                    m.list.insert(slot, elements);
                }
            }
            5 | 6 => {
                let user_key = rng.below(USER_KEYS) as u8;
                let map = s.map().map_err(err)?;
                map.set_namespace(&ns).map_err(err)?;
                map.put(&user_key, &(x as u32)).map_err(err)?;
                m.map.entry(slot).or_default().insert(user_key, x as u32);
            }
            7 => {
                let user_key = rng.below(USER_KEYS) as u8;
                let map = s.map().map_err(err)?;
                map.set_namespace(&ns).map_err(err)?;
                map.remove(&user_key).map_err(err)?;
                if let Some(entries) = m.map.get_mut(&slot) {
                    entries.remove(&user_key);
                    if entries.is_empty() {
                        m.map.remove(&slot);
                    }
                }
            }
            8 => {
                let r = s.sum().map_err(err)?;
                r.set_namespace(&ns).map_err(err)?;
                r.add(&x).map_err(err)?;
                let total = m.sum.entry(slot).or_insert(0);
                *total = total.wrapping_add(x);
            }
            9 => {
                let a = s.avg().map_err(err)?;
                a.set_namespace(&ns).map_err(err)?;
                a.add(&x).map_err(err)?;
                let acc = m.avg.entry(slot).or_insert((0, 0));
                *acc = (acc.0.wrapping_add(x), acc.1 + 1);
            }
            10 => {
                // Merging namespaces (session windows): the sources into the target, which is
                // not among them.
                let target = ns;
                let source = (ns + 1 + rng.below(NAMESPACES - 1) as u8) % NAMESPACES as u8;
                match rng.below(3) {
                    0 => {
                        let l = s.list().map_err(err)?;
                        l.merge_namespaces(&target, &[source]).map_err(err)?;
                        if let Some(moved) = m.list.remove(&(key, source)) {
                            m.list.entry(slot).or_default().extend(moved);
                        }
                    }
                    1 => {
                        let r = s.sum().map_err(err)?;
                        r.merge_namespaces(&target, &[source]).map_err(err)?;
                        if let Some(moved) = m.sum.remove(&(key, source)) {
                            let total = m.sum.entry(slot).or_insert(0);
                            *total = total.wrapping_add(moved);
                        }
                    }
                    _ => {
                        let a = s.avg().map_err(err)?;
                        a.merge_namespaces(&target, &[source]).map_err(err)?;
                        if let Some(moved) = m.avg.remove(&(key, source)) {
                            let acc = m.avg.entry(slot).or_insert((0, 0));
                            *acc = (acc.0.wrapping_add(moved.0), acc.1 + moved.1);
                        }
                    }
                }
            }
            11 | 12 => {
                let d = rng.below(2) as u8;
                // Timers at or before the time already reached would fire at once: keep them
                // later, as a processor registers timers for the future.
                let timestamp = self.fired_until[d as usize] + 1 + rng.below(200) as i64;
                s.timers()
                    .map_err(err)?
                    .register(domain(d), &ns, timestamp)
                    .map_err(err)?;
                m.timers.insert((d, timestamp, key, ns));
            }
            13 => {
                // Deletes a timer of this key if it has one.
                let existing = m.timers.iter().find(|t| t.2 == key && t.3 == ns).copied();
                if let Some(timer) = existing {
                    s.timers()
                        .map_err(err)?
                        .delete(domain(timer.0), &ns, timer.1)
                        .map_err(err)?;
                    m.timers.remove(&timer);
                }
            }
            _ => {
                // Reads, checked at once.
                let what = format!("read of key {key} namespace {ns}");
                if s.registered("v") {
                    let v = s.value().map_err(err)?;
                    v.set_namespace(&ns).map_err(err)?;
                    same(&what, v.get().map_err(err)?, m.value.get(&slot).copied())?;
                }
                if s.registered("m") {
                    let map = s.map().map_err(err)?;
                    map.set_namespace(&ns).map_err(err)?;
                    let expected: Vec<(u8, u32)> = m
                        .map
                        .get(&slot)
                        .map(|e| e.iter().map(|(k, v)| (*k, *v)).collect())
                        .unwrap_or_default();
                    same(&what, map.entries().map_err(err)?, expected)?;
                }
            }
        }
        Ok(())
    }

    /// Fires every timer up to a random later time in one domain, on every subtask, and checks
    /// the fired timers against the model's.
    fn fire(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let d = rng.below(2) as u8;
        let until = self.fired_until[d as usize] + rng.below(150) as i64;
        self.fired_until[d as usize] = until;
        let mut fired = BTreeSet::new();
        for s in &mut self.subtasks {
            if s.timers.is_none() && !s.registered(TimeDomain::EventTime.state_name()) {
                continue;
            }
            s.timers()
                .map_err(err)?
                .advance(domain(d), until, |timer| {
                    fired.insert((d, timer.timestamp, timer.key_as()?, timer.namespace_as()?));
                    Ok(())
                })
                .map_err(err)?;
        }
        let due: BTreeSet<_> = self
            .model
            .timers
            .iter()
            .filter(|t| t.0 == d && t.1 <= until)
            .copied()
            .collect();
        for timer in &due {
            self.model.timers.remove(timer);
        }
        same(&format!("timers fired up to {until}"), fired, due)
    }

    fn kind(&self, rng: &mut Rng) -> SnapshotKind {
        let kinds = self.engine.kinds();
        kinds[rng.below(kinds.len() as u64) as usize]
    }

    fn backends(&self) -> Vec<KeyedStateBackend> {
        self.subtasks.iter().map(|s| s.backend.clone()).collect()
    }

    fn checkpoint(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let kind = self.kind(rng);
        let metadata =
            job::checkpoint(&self.backends(), &mut self.coordinator, kind).map_err(err)?;
        self.log
            .push(format!("checkpoint {} ({kind:?})", metadata.checkpoint_id));
        self.taken.push(Taken {
            storage: self.storage.clone(),
            metadata,
            model: self.model.clone(),
        });
        Ok(())
    }

    /// A checkpoint triggered and snapshotted, then aborted before it completes.
    fn abort(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let kind = self.kind(rng);
        let pending = self.coordinator.trigger().map_err(err)?;
        let id = pending.id();
        let mut handles = Vec::new();
        for (i, s) in self.subtasks.iter().enumerate() {
            let snapshot = s.backend.snapshot(id, kind).map_err(err)?;
            // Some subtasks finish their part, the others never run it.
            if rng.below(2) == 0 {
                handles.push(
                    snapshot
                        .run(&self.storage, pending.attempt(), i as u32)
                        .map_err(err)?,
                );
            }
        }
        self.coordinator.abort(pending, &handles).map_err(err)?;
        for s in &self.subtasks {
            s.backend.notify_checkpoint_aborted(id).map_err(err)?;
        }
        self.log.push(format!("aborted checkpoint {id}"));
        Ok(())
    }

    fn parallelism(&self, rng: &mut Rng) -> u32 {
        let max = self.max_p.get();
        match rng.below(12) {
            0 => 1,
            // Every key group its own subtask, rarely: the largest jobs are the slowest.
            1 if max <= 16 || rng.below(8) == 0 => max,
            _ => 1 + rng.below(u64::from(max.min(5))) as u32,
        }
    }

    /// The checkpoints of the current root still there, that the schedule took.
    fn restorable(&self) -> Vec<usize> {
        (0..self.taken.len())
            .filter(|&i| {
                let t = &self.taken[i];
                Arc::ptr_eq(&t.storage, &self.storage)
                    && load_metadata(t.storage.as_ref(), t.metadata.checkpoint_id).is_ok()
            })
            .collect()
    }

    /// Stops the job and restores it from a retained checkpoint (the latest, or an older one) at
    /// a random parallelism and restore mode.
    fn restore(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let restorable = self.restorable();
        let Some(&latest) = restorable.last() else {
            return Ok(());
        };
        let pick = if rng.below(3) == 0 {
            restorable[rng.below(restorable.len() as u64) as usize]
        } else {
            latest
        };
        let mode = if rng.below(2) == 0 {
            RestoreMode::NoClaim
        } else {
            RestoreMode::Claim
        };
        let parallelism = self.parallelism(rng);
        let (storage, metadata, model) = {
            let t = &self.taken[pick];
            (t.storage.clone(), t.metadata.clone(), t.model.clone())
        };
        self.log.push(format!(
            "restore checkpoint {} at parallelism {parallelism} ({mode:?})",
            metadata.checkpoint_id
        ));
        self.stop()?;
        self.subtasks = (0..parallelism)
            .map(|i| {
                self.engine
                    .restore(&metadata, &storage, parallelism, i)
                    .map(Subtask::new)
            })
            .collect::<Result<_>>()
            .map_err(err)?;
        self.coordinator =
            CheckpointCoordinator::open_restored(storage, self.retained, &metadata, mode)
                .map_err(err)?;
        // The restored checkpoint's timers are pending again, in the backends and the model
        // alike: the next advance past them fires them.
        self.model = model;
        self.check()
    }

    /// An offline rescale of the latest checkpoint into a new root (as `keyedstate rescale`);
    /// the job then goes on from the new root, restored at another parallelism.
    fn rescale_offline(&mut self, rng: &mut Rng) -> std::result::Result<(), String> {
        let Some(&latest) = self.restorable().last() else {
            return Ok(());
        };
        let (storage, metadata, model) = {
            let t = &self.taken[latest];
            (t.storage.clone(), t.metadata.clone(), t.model.clone())
        };
        let parallelism = self.parallelism(rng);
        let kind = self.kind(rng);
        let out = self.engine.new_root();
        let mut coordinator = CheckpointCoordinator::open(out.clone(), 1).map_err(err)?;
        coordinator.continue_after(metadata.checkpoint_id.saturating_sub(1));
        let backends = (0..parallelism)
            .map(|i| self.engine.restore(&metadata, &storage, parallelism, i))
            .collect::<Result<Vec<_>>>()
            .map_err(err)?;
        let rescaled = job::checkpoint(&backends, &mut coordinator, kind).map_err(err)?;
        for backend in backends {
            backend.close().map_err(err)?;
        }
        self.log.push(format!(
            "offline rescale of checkpoint {} to parallelism {parallelism} ({kind:?})",
            metadata.checkpoint_id
        ));
        self.storage = out.clone();
        self.coordinator = coordinator;
        self.taken.push(Taken {
            storage: out,
            metadata: rescaled,
            model,
        });
        self.restore(rng)
    }

    fn stop(&mut self) -> std::result::Result<(), String> {
        for s in self.subtasks.drain(..) {
            s.backend.close().map_err(err)?;
        }
        Ok(())
    }

    /// Every key's state on the subtask owning it equals the model's; no subtask holds an entry
    /// outside its key groups; the entries and timers add up to the model's.
    fn check(&mut self) -> std::result::Result<(), String> {
        let mut entries = 0;
        let mut timers = 0;
        for s in &self.subtasks {
            let range = s.backend.key_group_range();
            for meta in s.backend.states().map_err(|e| e.to_string())? {
                let internal = meta.name.starts_with("_keyedstate.");
                s.backend
                    .scan_raw(&meta.name, &mut |entry| {
                        if !range.contains(entry.parts.key_group) {
                            return Err(keyedstate_core::Error::corruption(format!(
                                "state '{}' holds key group {} outside {range}",
                                meta.name, entry.parts.key_group
                            )));
                        }
                        if internal {
                            timers += 1;
                        } else {
                            entries += 1;
                        }
                        Ok(ControlFlow::Continue(()))
                    })
                    .map_err(err)?;
            }
        }
        same("entries in all subtasks", entries, self.model.entries())?;
        same("timers in all subtasks", timers, self.model.timers.len())?;
        for key in 0..KEYS {
            let owner = self.owner(key);
            let s = &mut self.subtasks[owner];
            s.backend.set_current_key(&key).map_err(err)?;
            for name in STATES {
                if !s.registered(name) {
                    if self.model.has(name, key) {
                        return Err(format!("state '{name}' of key {key} is not registered"));
                    }
                    continue;
                }
                for ns in 0..NAMESPACES as u8 {
                    let slot = (key, ns);
                    let what = format!("state '{name}' of key {key} namespace {ns}");
                    let m = &self.model;
                    match name {
                        "v" => {
                            let v = s.value().map_err(err)?;
                            v.set_namespace(&ns).map_err(err)?;
                            same(&what, v.get().map_err(err)?, m.value.get(&slot).copied())?;
                        }
                        "l" => {
                            let l = s.list().map_err(err)?;
                            l.set_namespace(&ns).map_err(err)?;
                            let expected = m.list.get(&slot).cloned().unwrap_or_default();
                            same(&what, l.get().map_err(err)?, expected)?;
                        }
                        "m" => {
                            let map = s.map().map_err(err)?;
                            map.set_namespace(&ns).map_err(err)?;
                            let expected: Vec<(u8, u32)> = m
                                .map
                                .get(&slot)
                                .map(|e| e.iter().map(|(k, v)| (*k, *v)).collect())
                                .unwrap_or_default();
                            same(&what, map.entries().map_err(err)?, expected)?;
                        }
                        "r" => {
                            let r = s.sum().map_err(err)?;
                            r.set_namespace(&ns).map_err(err)?;
                            same(&what, r.get().map_err(err)?, m.sum.get(&slot).copied())?;
                        }
                        _ => {
                            let a = s.avg().map_err(err)?;
                            a.set_namespace(&ns).map_err(err)?;
                            let expected = m.avg.get(&slot).map(|(sum, n)| *sum as f64 / *n as f64);
                            same(&what, a.get().map_err(err)?, expected)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Runs schedule `seed` on `engine`.
pub fn run_schedule(engine: &dyn JobEngine, seed: u64) -> std::result::Result<(), String> {
    let mut rng = Rng::new(seed);
    let max_p = MaxParallelism::new(MAX_PARALLELISMS[rng.below(5) as usize])
        .expect("a valid max parallelism");
    let retained = 1 + rng.below(3) as usize;
    let storage = engine.new_root();
    let coordinator = CheckpointCoordinator::open(storage.clone(), retained).map_err(err)?;
    let mut job = Job {
        engine,
        max_p,
        subtasks: Vec::new(),
        storage,
        coordinator,
        retained,
        model: Model::default(),
        taken: Vec::new(),
        fired_until: [0, 0],
        log: Vec::new(),
    };
    let parallelism = job.parallelism(&mut rng);
    job.subtasks = (0..parallelism)
        .map(|i| engine.open(max_p, parallelism, i).map(Subtask::new))
        .collect::<Result<_>>()
        .map_err(err)?;
    job.log.push(format!(
        "max parallelism {max_p}, parallelism {parallelism}, retained {retained}"
    ));
    let steps = 8 + rng.below(8);
    let mut result = Ok(());
    for _ in 0..steps {
        for _ in 0..rng.below(60) {
            result = job.record(&mut rng);
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = match rng.below(10) {
                0..=3 => job.checkpoint(&mut rng),
                4 => job.abort(&mut rng),
                5 => job.fire(&mut rng),
                6..=8 => job.restore(&mut rng),
                _ => job.rescale_offline(&mut rng),
            };
        }
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() {
        // Every timer left fires once, wherever its key group went.
        job.fired_until = [i64::MAX - 1; 2];
        result = job.check().and_then(|()| fire_all(&mut job));
    }
    let _ = job.stop();
    result.map_err(|e| format!("{e}\n  after: {}", job.log.join(", ")))
}

fn fire_all(job: &mut Job<'_>) -> std::result::Result<(), String> {
    for d in 0..2u8 {
        let mut fired = BTreeSet::new();
        for s in &mut job.subtasks {
            if s.timers.is_none() && !s.registered(TimeDomain::EventTime.state_name()) {
                continue;
            }
            s.timers()
                .map_err(err)?
                .advance(domain(d), i64::MAX, |timer| {
                    fired.insert((d, timer.timestamp, timer.key_as()?, timer.namespace_as()?));
                    Ok(())
                })
                .map_err(err)?;
        }
        let due: BTreeSet<_> = job
            .model
            .timers
            .iter()
            .filter(|t| t.0 == d)
            .copied()
            .collect();
        same("the timers left", fired, due)?;
    }
    Ok(())
}

/// Runs `count` schedules from `first_seed` (or only `KEYEDSTATE_SEED`, when set); returns the
/// number of divergences, each printed with its seed.
pub fn run_schedules(engine: &dyn JobEngine, first_seed: u64, count: u64) -> u64 {
    let seeds: Vec<u64> = match std::env::var("KEYEDSTATE_SEED") {
        Ok(seed) => vec![seed.parse().expect("KEYEDSTATE_SEED is a number")],
        Err(_) => (first_seed..first_seed + count.max(1)).collect(),
    };
    let mut divergences = 0;
    for (n, seed) in seeds.iter().enumerate() {
        if let Err(e) = run_schedule(engine, *seed) {
            divergences += 1;
            eprintln!("schedule seed {seed} diverged (KEYEDSTATE_SEED={seed} reruns it): {e}");
        }
        // Long runs report as they go, so a stopped one still says how far it got.
        if (n + 1) % 500 == 0 && n + 1 < seeds.len() {
            println!(
                "... schedules={} divergences={divergences} seeds={}..={seed}",
                n + 1,
                seeds[0]
            );
        }
    }
    let (first, last) = (seeds[0], seeds[seeds.len() - 1]);
    println!(
        "schedules={} divergences={divergences} seeds={first}..={last}",
        seeds.len()
    );
    divergences
}

/// The soak: `KEYEDSTATE_SCHEDULES` schedules (10,000 by default) from seed
/// `KEYEDSTATE_FIRST_SEED` (1,000,000), so that several processes can share a range; returns
/// the divergences.
pub fn soak(engine: &dyn JobEngine) -> u64 {
    let number = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |n| n.parse().expect("a number"))
    };
    let count = number("KEYEDSTATE_SCHEDULES", 10_000);
    run_schedules(engine, number("KEYEDSTATE_FIRST_SEED", 1_000_000), count)
}
