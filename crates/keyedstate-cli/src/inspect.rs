//! `keyedstate inspect`: what a checkpoint holds.

use crate::checkpoint_arg::open_checkpoint;
use clap::Args;
use keyedstate::Result;
use keyedstate::checkpoint::SnapshotHandle;
use std::path::PathBuf;

#[derive(Args)]
pub struct InspectArgs {
    /// A `chk-<id>` directory, or a checkpoint root (its latest completed checkpoint); a path or
    /// an object-store URL (`s3://bucket/prefix[/chk-<id>]`, endpoint and credentials from the
    /// `AWS_*` environment variables).
    checkpoint: PathBuf,
    /// Print the whole `_metadata` document as JSON instead.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &InspectArgs) -> Result<()> {
    let (storage, metadata) = open_checkpoint(&args.checkpoint)?;
    if args.json {
        let json = serde_json::to_string_pretty(&metadata).expect("metadata serializes");
        say!("{json}");
        return Ok(());
    }
    say!(
        "checkpoint {} in {}",
        metadata.checkpoint_id,
        storage.describe()
    );
    say!(
        "max parallelism {}, parallelism {}",
        metadata.max_parallelism,
        metadata.parallelism()
    );
    say!("states:");
    for state in &metadata.states {
        let user_key = state
            .user_key_codec
            .as_deref()
            .map(|c| format!(", user key {c}"))
            .unwrap_or_default();
        say!(
            "  {}\t{}\tvalue {}{user_key}",
            state.name,
            state.kind,
            state.value_codec
        );
    }
    let (mut shared, mut own) = (0u64, 0u64);
    for handle in &metadata.subtasks {
        let kind = match &handle.snapshot {
            SnapshotHandle::Full { .. } => "full".to_owned(),
            SnapshotHandle::RocksDbIncremental { backend_id, .. } => {
                format!("rocksdb incremental, instance {backend_id}")
            }
        };
        say!(
            "subtask {}: key groups {}, {kind}",
            handle.subtask,
            handle.key_group_range
        );
        for file in handle.files() {
            let place = if file.is_shared() { "shared" } else { "own" };
            say!(
                "  {}\t{} bytes\tcrc32c {:08x}\t{place}",
                file.path,
                file.size,
                file.crc32c
            );
            if file.is_shared() {
                shared += file.size
            } else {
                own += file.size
            }
        }
    }
    say!(
        "files: {} bytes shared, {} bytes own, {} bytes in all",
        shared,
        own,
        shared + own
    );
    Ok(())
}
