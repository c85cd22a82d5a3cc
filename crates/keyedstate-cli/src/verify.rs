//! `keyedstate verify`: every referenced file present with its size and checksum, and the
//! checkpoint restores; optionally the logical digest of its state.

use crate::checkpoint_arg::open_checkpoint;
use clap::Args;
use keyedstate::checkpoint::SnapshotHandle;
use keyedstate::job::{self, Engine};
use keyedstate::{Error, Result, StateDigest};
use std::path::PathBuf;

#[derive(Args)]
pub struct VerifyArgs {
    /// A `chk-<id>` directory, or a checkpoint root (its latest completed checkpoint).
    checkpoint: PathBuf,
    /// Print, as the last line, `entries=<N> digest=<hex>`: an order-independent hash of every
    /// logical entry, equal for equal state whatever the backend, format or parallelism.
    #[arg(long)]
    digest: bool,
}

pub fn run(args: &VerifyArgs) -> Result<()> {
    let (storage, metadata) = open_checkpoint(&args.checkpoint)?;
    let files: Vec<_> = metadata.files().collect();
    for file in &files {
        storage.verify(file)?;
    }
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    say!(
        "checkpoint {}: {} files, {bytes} bytes, sizes and checksums OK",
        metadata.checkpoint_id,
        files.len()
    );
    // Incremental snapshots restore only into RocksDB; full ones restore fastest on the heap.
    let incremental = metadata
        .subtasks
        .iter()
        .any(|h| matches!(h.snapshot, SnapshotHandle::RocksDbIncremental { .. }));
    let engine = if incremental {
        Engine::RocksDb
    } else {
        Engine::Heap
    };
    let work =
        tempfile::tempdir().map_err(|e| Error::io("cannot create a temporary directory", e))?;
    let mut digest = StateDigest::default();
    for index in 0..metadata.parallelism() {
        let backend = job::restore_subtask(
            engine,
            &metadata,
            &storage,
            metadata.parallelism(),
            index,
            work.path(),
        )?;
        digest.merge(backend.digest()?);
        backend.close()?;
    }
    say!(
        "restored {} subtasks with the {} backend: OK",
        metadata.parallelism(),
        engine.name()
    );
    if args.digest {
        say!("{digest}");
    }
    Ok(())
}
