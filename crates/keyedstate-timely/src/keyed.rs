//! The keyed stateful operator: records go to the worker that owns their key group, and each
//! worker processes its records, fires its event-time timers and takes its checkpoints epoch by
//! epoch, in epoch order, once its input frontier has passed the epoch.
//!
//! Processing an epoch only when the frontier has passed it is what aligns the checkpoints:
//! the state a worker snapshots at checkpoint epoch `E` holds exactly the records of epochs up
//! to `E`, whatever the other workers have sent it of later epochs meanwhile (those wait in the
//! operator). Within an epoch the records of one key are processed in the order they arrive, the
//! timers after them, in timestamp order.

use crate::checkpoints::Checkpoints;
use crate::job::Job;
use keyedstate::checkpoint::{SubtaskHandle, load_metadata};
use keyedstate::job::SubtaskSnapshot;
use keyedstate::{FiredTimer, TimeDomain, TimerService};
use keyedstate::{KeyedStateBackend, MaxParallelism, Result, StateKey};
use std::collections::BTreeMap;
use std::rc::Rc;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::operator::Operator;
use timely::dataflow::operators::vec::Map;

/// What the keyed operator's logic sees of one record or timer: the backend with the current key
/// set, the epoch, the timers, and where output goes (at this epoch).
pub struct Context<'a, O> {
    backend: &'a KeyedStateBackend,
    timers: &'a TimerService,
    epoch: u64,
    output: &'a mut Vec<O>,
}

impl<O> Context<'_, O> {
    /// The backend, its current key the record's (or the timer's).
    pub fn backend(&self) -> &KeyedStateBackend {
        self.backend
    }

    /// The epoch being processed: the record's, or the timer's timestamp.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Emits `record` at this epoch.
    pub fn emit(&mut self, record: O) {
        self.output.push(record);
    }

    /// Registers an event-time timer of the current key at epoch `at`: it fires once the
    /// input frontier passes `at`, after the records of `at` (at once, at the next epoch
    /// processed, if `at` is not after the current epoch).
    pub fn register_timer(&self, at: u64) -> Result<()> {
        self.timers
            .register(TimeDomain::EventTime, &(), timestamp(at))
    }

    /// Deletes the current key's event-time timer at `at`, if there is one.
    pub fn delete_timer(&self, at: u64) -> Result<()> {
        self.timers
            .delete(TimeDomain::EventTime, &(), timestamp(at))
    }
}

fn timestamp(epoch: u64) -> i64 {
    i64::try_from(epoch).unwrap_or(i64::MAX)
}

/// The worker that owns `key`'s key group among `peers`, as Flink assigns key groups.
pub fn worker_of<K: StateKey + ?Sized>(
    key: &K,
    max_parallelism: MaxParallelism,
    peers: u32,
) -> u64 {
    // A key that cannot be encoded goes to worker 0, whose `set_current_key` reports it.
    max_parallelism
        .key_group_of_key(key)
        .and_then(|group| max_parallelism.subtask_of(group, peers))
        .map_or(0, u64::from)
}

/// What the operator emits: the user's records, and each checkpoint's handle for the committer.
#[derive(Clone)]
enum Emitted<O> {
    Record(O),
    Handle(Vec<u8>),
}

/// Keyed state for a timely stream of `D` with epochs as timestamps.
pub trait KeyedState<'scope, D> {
    /// The keyed operator of `job` (one per job): `key` picks each record's key; `setup` gets
    /// the worker's backend once and returns the state handles `logic` and `on_timer` use
    /// (register states there); `logic` runs for each record with its key current, `on_timer`
    /// for each event-time timer that fires. Returns the emitted records and the checkpoints'
    /// stream, which [`Checkpoints::complete_after`] must join once the job's effects are done.
    fn keyed_state<K, S, O, Setup, Logic, OnTimer>(
        self,
        job: &Job,
        key: impl Fn(&D) -> K + 'static,
        setup: Setup,
        logic: Logic,
        on_timer: OnTimer,
    ) -> (StreamVec<'scope, u64, O>, Checkpoints<'scope>)
    where
        K: StateKey,
        S: 'static,
        O: Clone + 'static,
        Setup: FnOnce(&KeyedStateBackend) -> Result<S>,
        Logic: FnMut(&mut S, &mut Context<'_, O>, D) -> Result<()> + 'static,
        OnTimer: FnMut(&mut S, &mut Context<'_, O>, &FiredTimer) -> Result<()> + 'static;
}

impl<'scope, D: ExchangeData> KeyedState<'scope, D> for StreamVec<'scope, u64, D> {
    fn keyed_state<K, S, O, Setup, Logic, OnTimer>(
        self,
        job: &Job,
        key: impl Fn(&D) -> K + 'static,
        setup: Setup,
        mut logic: Logic,
        mut on_timer: OnTimer,
    ) -> (StreamVec<'scope, u64, O>, Checkpoints<'scope>)
    where
        K: StateKey,
        S: 'static,
        O: Clone + 'static,
        Setup: FnOnce(&KeyedStateBackend) -> Result<S>,
        Logic: FnMut(&mut S, &mut Context<'_, O>, D) -> Result<()> + 'static,
        OnTimer: FnMut(&mut S, &mut Context<'_, O>, &FiredTimer) -> Result<()> + 'static,
    {
        let (max_parallelism, peers) = (job.config().max_parallelism, job.peers());
        let key = Rc::new(key);
        let route = {
            let key = key.clone();
            move |d: &D| worker_of(&key(d), max_parallelism, peers)
        };
        let operator = job.take_backend().and_then(|backend| {
            let timers = backend.timer_service()?;
            let states = setup(&backend)?;
            Ok(Worker {
                job: job.clone(),
                key,
                backend,
                timers,
                states,
                stash: BTreeMap::new(),
                next: job.first_epoch(),
                pending: Vec::new(),
            })
        });
        let failed = job.clone();
        let emitted = self.unary_frontier::<CapacityContainerBuilder<Vec<Emitted<O>>>, _, _, _>(
            Exchange::new(route),
            "KeyedState",
            move |capability, _info| {
                let mut worker = match operator {
                    Ok(worker) => Some(worker),
                    Err(e) => {
                        failed.fail(e);
                        None
                    }
                };
                // Held at the first epoch not processed yet, until the input ends: what lets
                // the operator emit at, and checkpoint, epochs that brought it no records.
                let mut cursor = Some(capability);
                if let (Some(cursor), Some(worker)) = (&mut cursor, &worker) {
                    cursor.downgrade(&worker.next);
                }
                move |(input, frontier), output| {
                    let (Some(w), Some(cap)) = (worker.as_mut(), cursor.as_mut()) else {
                        input.for_each(|_, data| data.clear());
                        return;
                    };
                    if w.job.failed() {
                        // The worker stops here; its loop ends the process.
                        input.for_each(|_, data| data.clear());
                        return;
                    }
                    input.for_each(|stamp, data| {
                        w.stash.entry(epoch_of(&stamp)).or_default().append(data);
                    });
                    let upper = frontier.frontier().first().copied();
                    let advanced =
                        w.advance(upper, &mut logic, &mut on_timer, &mut |epoch, out| {
                            cap.downgrade(&epoch);
                            output.session(&*cap).give_iterator(out.into_iter());
                        });
                    match (advanced, upper) {
                        (Err(e), _) => w.job.fail(e),
                        (Ok(()), Some(upper)) => cap.downgrade(&upper.max(w.next)),
                        (Ok(()), None) => cursor = None,
                    }
                }
            },
        );
        let records = emitted.clone().flat_map(|e| match e {
            Emitted::Record(r) => Some(r),
            Emitted::Handle(_) => None,
        });
        let handles = emitted.flat_map(|e| match e {
            Emitted::Handle(h) => Some(h),
            Emitted::Record(_) => None,
        });
        (records, Checkpoints::new(job.clone(), handles))
    }
}

/// One worker's keyed operator.
struct Worker<D, S, F> {
    job: Job,
    key: Rc<F>,
    backend: KeyedStateBackend,
    timers: TimerService,
    states: S,
    /// Records of epochs not processed yet, by epoch.
    stash: BTreeMap<u64, Vec<D>>,
    /// The first epoch not processed yet.
    next: u64,
    /// This worker's checkpoints whose completion it has not learned of yet, with its handle of
    /// each.
    pending: Vec<(u64, SubtaskHandle)>,
}

impl<D, S, F, K> Worker<D, S, F>
where
    F: Fn(&D) -> K,
    K: StateKey,
{
    /// Processes, in order, every epoch before `upper` (every epoch, once the input has ended)
    /// that has records, timers or a checkpoint; `emit` gets each such epoch's output.
    fn advance<O>(
        &mut self,
        upper: Option<u64>,
        logic: &mut impl FnMut(&mut S, &mut Context<'_, O>, D) -> Result<()>,
        on_timer: &mut impl FnMut(&mut S, &mut Context<'_, O>, &FiredTimer) -> Result<()>,
        emit: &mut impl FnMut(u64, Vec<Emitted<O>>),
    ) -> Result<()> {
        let every = self.job.config().checkpoint_every;
        loop {
            let timer = self.timers.next_timestamp(TimeDomain::EventTime)?;
            // No checkpoint once the input has ended: nothing is left to recover.
            let checkpoint = upper.map(|_| self.next.max(1).div_ceil(every) * every);
            let next = [
                self.stash.keys().next().copied(),
                timer.map(|t| u64::try_from(t).unwrap_or(0)),
                checkpoint,
            ];
            let Some(epoch) = next.into_iter().flatten().min().map(|e| e.max(self.next)) else {
                return Ok(());
            };
            if upper.is_some_and(|upper| epoch >= upper) {
                return Ok(());
            }
            let mut out = Vec::new();
            for record in self.stash.remove(&epoch).unwrap_or_default() {
                self.backend.set_current_key(&(self.key)(&record))?;
                let mut ctx = Context {
                    backend: &self.backend,
                    timers: &self.timers,
                    epoch,
                    output: &mut out,
                };
                logic(&mut self.states, &mut ctx, record)?;
            }
            let (timers, backend, states) = (&self.timers, &self.backend, &mut self.states);
            timers.advance(TimeDomain::EventTime, timestamp(epoch), |timer| {
                let mut ctx = Context {
                    backend,
                    timers,
                    epoch,
                    output: &mut out,
                };
                on_timer(states, &mut ctx, timer)
            })?;
            let mut emitted: Vec<Emitted<O>> = out.into_iter().map(Emitted::Record).collect();
            if self.job.is_checkpoint_epoch(epoch) && upper.is_some() {
                emitted.push(Emitted::Handle(self.checkpoint(epoch)?));
            }
            if !emitted.is_empty() {
                emit(epoch, emitted);
            }
            self.next = epoch + 1;
        }
    }

    /// Takes this worker's part of checkpoint `epoch` (both parts, on this thread) and returns
    /// its handle, encoded for the committer. First learns, from the checkpoint root, of the
    /// completion of its earlier checkpoints, so that the backend uploads only what no
    /// completed checkpoint holds.
    fn checkpoint(&mut self, epoch: u64) -> Result<Vec<u8>> {
        let config = self.job.config();
        let storage = &config.storage;
        let index = self.job.index();
        // The latest of ours that completed: its `_metadata` is there and holds our handle (not
        // that of another writer of the same id, whose files are not ours to build on).
        let completed = self.pending.iter().rev().find(|(id, handle)| {
            load_metadata(storage.as_ref(), *id)
                .is_ok_and(|m| m.subtasks.get(index as usize) == Some(handle))
        });
        if let Some(&(id, _)) = completed {
            keyedstate::job::notify(std::slice::from_ref(&self.backend), id, true)?;
            self.pending.retain(|(pending, _)| *pending > id);
        }
        let operator_state = self.job.take_operator_snapshot(epoch);
        let attempt = self.job.attempt(epoch)?;
        let handle =
            SubtaskSnapshot::take(&self.backend, operator_state, index, epoch, config.kind)?
                .write(storage, &attempt)?;
        let encoded = handle.encode()?;
        self.pending.push((epoch, handle));
        Ok(encoded)
    }
}

/// The epoch of a message: its stamp's time (a stamp of epochs, totally ordered, has one).
pub(crate) fn epoch_of(stamp: &timely::dataflow::operators::InputCapability<u64>) -> u64 {
    stamp.least().copied().unwrap_or_default()
}
