//! Tracing of checkpoint and restore phases: every phase runs inside a `keyedstate.phase` span
//! with the fields `phase` (its name), `id` (the checkpoint id), and, when it ends,
//! `elapsed_ms` and `bytes` (what it wrote or read; 0 for phases that move none).

use crate::error::Result;
use std::time::Instant;
use tracing::field::Empty;

/// Runs `f` as phase `phase` of checkpoint `id`; `bytes_of` tells the bytes of its outcome.
pub fn traced<R>(
    phase: &'static str,
    id: u64,
    f: impl FnOnce() -> Result<R>,
    bytes_of: impl Fn(&R) -> u64,
) -> Result<R> {
    let span = tracing::info_span!(
        "keyedstate.phase",
        phase,
        id,
        elapsed_ms = Empty,
        bytes = Empty
    );
    let _entered = span.enter();
    let started = Instant::now();
    let result = f();
    span.record("elapsed_ms", started.elapsed().as_secs_f64() * 1e3);
    match &result {
        Ok(outcome) => {
            span.record("bytes", bytes_of(outcome));
        }
        Err(e) => tracing::warn!(error = %e, "{phase} failed"),
    }
    result
}
