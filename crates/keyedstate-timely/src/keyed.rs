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
use keyedstate::{Error, KeyedStateBackend, MaxParallelism, Result, StateKey};
use keyedstate::{FiredTimer, TimeDomain, TimerService};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::StreamVec;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::core::OkErr;
use timely::dataflow::operators::generic::operator::Operator;
use timely::scheduling::SyncActivator;

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
        O: 'static,
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
        O: 'static,
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
                checkpoints: BTreeSet::new(),
                in_flight: None,
                pending: Vec::new(),
            })
        });
        let failed = job.clone();
        let scope = self.scope();
        let checkpoint_epochs = match job.checkpoint_epochs(scope) {
            Ok(stream) => stream,
            Err(e) => {
                job.fail(e);
                // No announcements: an input that never sends, closed at once.
                let mut none = timely::dataflow::InputHandleVec::<u64, u64>::new();
                none.to_stream(scope)
            }
        };
        let emitted = self
            .binary_frontier::<_, CapacityContainerBuilder<Vec<Emitted<O>>>, _, _, _, _>(
                checkpoint_epochs,
                Exchange::new(route),
                Pipeline,
                "KeyedState",
                move |capability, info| {
                    let mut worker = match operator {
                        Ok(worker) => Some(worker),
                        Err(e) => {
                            failed.fail(e);
                            None
                        }
                    };
                    // Wakes the operator when a checkpoint's asynchronous part is done.
                    let activator = scope.worker().sync_activator_for(info.address.to_vec());
                    // Held at the first epoch not processed yet, until the input ends: what lets
                    // the operator emit at, and checkpoint, epochs that brought it no records.
                    let mut cursor = Some(capability);
                    if let (Some(cursor), Some(worker)) = (&mut cursor, &worker) {
                        cursor.downgrade(&worker.next);
                    }
                    move |(input, frontier), (announced, announced_frontier), output| {
                        let Some(w) = worker.as_mut().filter(|w| !w.job.failed()) else {
                            // A failed worker stops here; its loop ends the process.
                            input.for_each(|_, data| data.clear());
                            announced.for_each(|_, data| data.clear());
                            return;
                        };
                        announced.for_each(|_, data| w.checkpoints.extend(data.drain(..)));
                        let result = (|| -> Result<()> {
                            if let Some((held, handle)) = w.finish_checkpoint(false)? {
                                output.session(&held).give(Emitted::Handle(handle));
                            }
                            let Some(cap) = cursor.as_mut() else {
                                return Ok(());
                            };
                            input.for_each(|stamp, data| {
                                w.stash.entry(epoch_of(&stamp)).or_default().append(data);
                            });
                            // An announcement of epoch `e` arrives before its frontier passes `e`,
                            // so every checkpoint epoch before `upper` is known.
                            let upper = [frontier, announced_frontier]
                                .iter()
                                .filter_map(|f| f.frontier().first().copied())
                                .min();
                            while let Some(epoch) =
                                w.advance(upper, &mut logic, &mut on_timer, &mut |epoch, out| {
                                    // Never before the capability: every epoch before it was
                                    // processed in an earlier activation (the `max` only keeps
                                    // a broken invariant from panicking).
                                    debug_assert!(epoch >= *cap.time());
                                    cap.downgrade(&epoch.max(*cap.time()));
                                    output.session(&*cap).give_iterator(out.into_iter());
                                })?
                            {
                                // One checkpoint in flight at a time (Flink's default): the one
                                // before, if still running, is waited for.
                                if let Some((held, handle)) = w.finish_checkpoint(true)? {
                                    output.session(&held).give(Emitted::Handle(handle));
                                }
                                let held = cap.delayed(&epoch.max(*cap.time()));
                                w.start_checkpoint(epoch, held, activator.clone())?;
                            }
                            match upper {
                                Some(upper) => cap.downgrade(&upper.max(w.next)),
                                None => cursor = None,
                            }
                            Ok(())
                        })();
                        if let Err(e) = result {
                            w.job.fail(e);
                        }
                    }
                },
            );
        // Split, each item moved to one side (two filters of a cloned stream would copy every
        // record once more).
        let (records, handles) = emitted.ok_err(|e| match e {
            Emitted::Record(r) => Ok(r),
            Emitted::Handle(h) => Err(h),
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
    /// The checkpoint epochs announced and not reached yet.
    checkpoints: BTreeSet<u64>,
    /// The checkpoint whose asynchronous part is running, if one is.
    in_flight: Option<InFlight>,
    /// This worker's checkpoints whose completion it has not learned of yet, with its handle of
    /// each.
    pending: Vec<(u64, SubtaskHandle)>,
}

/// A checkpoint's asynchronous part, on a thread of its own while the worker goes on.
struct InFlight {
    epoch: u64,
    /// Holds the operator's output at the checkpoint's epoch until its handle is out.
    capability: Capability<u64>,
    /// Where its thread sends the handle, before it wakes the operator.
    written: std::sync::mpsc::Receiver<Result<SubtaskHandle>>,
}

impl<D, S, F, K> Worker<D, S, F>
where
    F: Fn(&D) -> K,
    K: StateKey,
{
    /// Processes, in order, every epoch before `upper` (every epoch, once the input has ended)
    /// that has records or timers, up to and including the next checkpoint epoch, whose id it
    /// returns; `emit` gets each epoch's output.
    fn advance<O>(
        &mut self,
        upper: Option<u64>,
        logic: &mut impl FnMut(&mut S, &mut Context<'_, O>, D) -> Result<()>,
        on_timer: &mut impl FnMut(&mut S, &mut Context<'_, O>, &FiredTimer) -> Result<()>,
        emit: &mut impl FnMut(u64, Vec<Emitted<O>>),
    ) -> Result<Option<u64>> {
        loop {
            let timer = self.timers.next_timestamp(TimeDomain::EventTime)?;
            let checkpoint = self.checkpoints.first().copied();
            let next = [
                self.stash.keys().next().copied(),
                timer.map(|t| u64::try_from(t).unwrap_or(0)),
                checkpoint,
            ];
            let Some(epoch) = next.into_iter().flatten().min().map(|e| e.max(self.next)) else {
                return Ok(None);
            };
            if upper.is_some_and(|upper| epoch >= upper) {
                return Ok(None);
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
            if !out.is_empty() {
                emit(epoch, out.into_iter().map(Emitted::Record).collect());
            }
            self.next = epoch + 1;
            if self.checkpoints.first() == Some(&epoch) {
                self.checkpoints.pop_first();
                return Ok(Some(epoch));
            }
        }
    }

    /// Takes the synchronous part of this worker's snapshot for checkpoint `epoch` (all records
    /// and timers up to it are processed) and starts its asynchronous part on a thread, which
    /// wakes the operator through `activator` when done. First learns, from the checkpoint
    /// root, which of its earlier checkpoints completed, so that the backend uploads only what
    /// no completed checkpoint holds.
    fn start_checkpoint(
        &mut self,
        epoch: u64,
        capability: Capability<u64>,
        activator: SyncActivator,
    ) -> Result<()> {
        let config = self.job.config();
        let index = self.job.index();
        // The latest of ours that completed: its `_metadata` is there and holds our handle (not
        // that of another writer of the same id, whose files are not ours to build on).
        let completed = self.pending.iter().rev().find(|(id, handle)| {
            load_metadata(config.storage.as_ref(), *id)
                .is_ok_and(|m| m.subtasks.get(index as usize) == Some(handle))
        });
        if let Some(&(id, _)) = completed {
            keyedstate::job::notify(std::slice::from_ref(&self.backend), id, true)?;
            self.pending.retain(|(pending, _)| *pending > id);
        }
        let operator_state = self.job.take_operator_snapshot(epoch);
        let attempt = self.job.attempt(epoch)?;
        let snapshot =
            SubtaskSnapshot::take(&self.backend, operator_state, index, epoch, config.kind)?;
        let storage = config.storage.clone();
        let (send, written) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name(format!("checkpoint-{epoch}-worker-{index}"))
            .spawn(move || {
                // The handle first, then the wake-up: the operator finds it when it runs. The
                // operator may be gone already (the job failed): nothing to tell then.
                let _ = send.send(snapshot.write(&storage, &attempt));
                let _ = activator.activate();
            })
            .map_err(|e| Error::io("cannot start a checkpoint thread", e))?;
        self.in_flight = Some(InFlight {
            epoch,
            capability,
            written,
        });
        Ok(())
    }

    /// The handle of the checkpoint in flight, encoded for the committer, with the capability
    /// to emit it at, once its asynchronous part is done (waited for with `wait`).
    fn finish_checkpoint(&mut self, wait: bool) -> Result<Option<(Capability<u64>, Vec<u8>)>> {
        let Some(in_flight) = &self.in_flight else {
            return Ok(None);
        };
        let written = match wait {
            true => in_flight.written.recv().ok(),
            false => match in_flight.written.try_recv() {
                Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(None),
                received => received.ok(),
            },
        };
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(None);
        };
        // No handle and no error: the thread died without sending (it panicked).
        let written = written.ok_or_else(|| {
            Error::invalid_argument(format!(
                "the asynchronous part of checkpoint {} panicked",
                in_flight.epoch
            ))
        })?;
        let handle = match written {
            Ok(handle) => handle,
            // Declined (it could not be taken consistently; the next one is taken another
            // way): no handle, so worker 0 does not complete it, and the job goes on.
            Err(e) if e.is_declined() => {
                tracing::warn!(epoch = in_flight.epoch, error = %e, "checkpoint declined");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let encoded = handle.encode()?;
        self.pending.push((in_flight.epoch, handle));
        Ok(Some((in_flight.capability, encoded)))
    }
}

/// The epoch of a message: its stamp's time (a stamp of epochs, totally ordered, has one).
pub(crate) fn epoch_of(stamp: &timely::dataflow::operators::InputCapability<u64>) -> u64 {
    stamp.least().copied().unwrap_or_default()
}
