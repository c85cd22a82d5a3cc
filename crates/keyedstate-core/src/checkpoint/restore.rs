//! Restoring canonical full snapshots into any engine.

use super::canonical::{CanonicalSnapshot, restore_canonical};
use super::metadata::{CheckpointMetadata, SnapshotHandle};
use super::storage::CheckpointStorage;
use crate::backend::StateBackend;
use crate::error::{Error, Result};
use crate::phase::traced;

/// Checks that `metadata` can be restored into a backend of `engine`'s max parallelism.
pub fn check_max_parallelism(
    metadata: &CheckpointMetadata,
    engine: &dyn StateBackend,
) -> Result<()> {
    if metadata.max_parallelism != engine.max_parallelism() {
        return Err(Error::incompatible_state(format!(
            "checkpoint {} has max parallelism {}, the backend {}: key groups cannot be remapped",
            metadata.checkpoint_id,
            metadata.max_parallelism,
            engine.max_parallelism()
        )));
    }
    Ok(())
}

/// Takes over the key codec of `metadata` (see [`CheckpointMetadata::key_codec`]): the keys
/// set later must encode with it. An engine holding keys of another codec already is
/// `IncompatibleState`.
pub fn adopt_key_codec(engine: &mut dyn StateBackend, metadata: &CheckpointMetadata) -> Result<()> {
    let Some(codec) = metadata.key_codec() else {
        return Ok(());
    };
    match engine.key_codec() {
        Some(own) if own != codec => Err(Error::incompatible_state(format!(
            "checkpoint {} holds keys of codec '{codec}', this backend keys of codec '{own}'",
            metadata.checkpoint_id
        ))),
        _ => {
            engine.set_key_codec(codec);
            Ok(())
        }
    }
}

/// Restores into `engine` every key group it holds from the full snapshots of `metadata`
/// (whatever the checkpoint's parallelism); registers every state of the checkpoint.
pub fn restore_full_snapshots(
    engine: &mut dyn StateBackend,
    metadata: &CheckpointMetadata,
    storage: &dyn CheckpointStorage,
) -> Result<u64> {
    check_max_parallelism(metadata, engine)?;
    adopt_key_codec(engine, metadata)?;
    for meta in &metadata.states {
        engine.register_state(meta)?;
    }
    let mut restored = 0;
    for handle in &metadata.subtasks {
        if handle
            .key_group_range
            .intersect(engine.key_group_range())
            .is_none()
        {
            continue;
        }
        match &handle.snapshot {
            SnapshotHandle::Full { file } => {
                let restore = || {
                    let mut snapshot = CanonicalSnapshot::open_for(
                        storage,
                        file,
                        handle,
                        metadata.max_parallelism,
                    )?;
                    restore_canonical(&mut *engine, &mut snapshot)
                };
                restored += traced("restore.full", metadata.checkpoint_id, restore, |_| {
                    file.size
                })?;
            }
            SnapshotHandle::RocksDbIncremental { .. } => {
                return Err(Error::incompatible_state(format!(
                    "subtask {} of checkpoint {} is a RocksDB incremental snapshot; the {} backend \
                     restores it only at the same parallelism with RocksDB",
                    handle.subtask,
                    metadata.checkpoint_id,
                    engine.engine_name()
                )));
            }
        }
    }
    Ok(restored)
}
