//! Every checkpoint and restore phase runs in a `keyedstate.phase` span that records its bytes.

mod common;

use common::directory_coordinator;
use keyedstate::job::{self, Engine};
use keyedstate::{MaxParallelism, SnapshotKind, ValueStateDescriptor};
use std::sync::{Arc, Mutex};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Spans seen: (phase, bytes once recorded).
type SpanLog = Arc<Mutex<Vec<(String, Option<u64>)>>>;

#[derive(Clone, Default)]
struct Phases(SpanLog);

#[derive(Default)]
struct Fields {
    phase: Option<String>,
    bytes: Option<u64>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "phase" {
            self.phase = Some(value.to_owned());
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "bytes" {
            self.bytes = Some(value);
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl Subscriber for Phases {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let mut fields = Fields::default();
        attributes.record(&mut fields);
        let mut spans = self.0.lock().unwrap();
        spans.push((fields.phase.unwrap_or_default(), None));
        Id::from_u64(spans.len() as u64)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut fields = Fields::default();
        values.record(&mut fields);
        if let Some(bytes) = fields.bytes {
            self.0.lock().unwrap()[span.into_u64() as usize - 1].1 = Some(bytes);
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn checkpoint_and_restore_phases_record_their_bytes() {
    let phases = Phases::default();
    tracing::subscriber::with_default(phases.clone(), || {
        let (_dir, storage, mut coordinator) = directory_coordinator(1);
        let work = tempfile::tempdir().unwrap();
        let max_p = MaxParallelism::new(128).unwrap();
        let backend = job::open_subtask(Engine::RocksDb, max_p, 1, 0, work.path()).unwrap();
        let value = backend
            .value_state(&ValueStateDescriptor::<u64>::new("v"))
            .unwrap();
        for key in 0u64..200 {
            backend.set_current_key(&key).unwrap();
            value.update(&key).unwrap();
        }
        // On this thread (job::checkpoint runs the asynchronous parts on others).
        let pending = coordinator.trigger().unwrap();
        let handle = backend
            .snapshot(pending.id(), SnapshotKind::Incremental)
            .unwrap()
            .run(&storage, pending.attempt(), 0)
            .unwrap();
        let metadata = coordinator
            .complete(pending, max_p, vec![handle])
            .unwrap()
            .clone();
        // Rescale 1 -> 2 into RocksDB (base, clip) and into the heap (import).
        for (engine, index) in [(Engine::RocksDb, 1), (Engine::Heap, 0)] {
            job::restore_subtask(
                engine,
                &metadata,
                &storage,
                2,
                index,
                &work.path().join("r"),
            )
            .unwrap()
            .close()
            .unwrap();
        }
    });
    let spans = phases.0.lock().unwrap().clone();
    for phase in [
        "snapshot.sync",
        "snapshot.async",
        "checkpoint.complete",
        "restore.base",
        "restore.clip",
        "restore.import",
    ] {
        let (_, bytes) = spans
            .iter()
            .find(|(p, _)| p == phase)
            .unwrap_or_else(|| panic!("a {phase} span in {spans:?}"));
        assert!(bytes.is_some(), "{phase} records its bytes");
    }
    let written = spans
        .iter()
        .find(|(p, _)| p == "snapshot.async")
        .unwrap()
        .1
        .unwrap();
    let base = spans
        .iter()
        .find(|(p, _)| p == "restore.base")
        .unwrap()
        .1
        .unwrap();
    assert!(
        written > 0 && base == written,
        "restore reads the bytes the snapshot wrote: {spans:?}"
    );
}
