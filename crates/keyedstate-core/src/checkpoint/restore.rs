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

/// Restores into `engine` every key group it holds from the full snapshots of `metadata`
/// (whatever the checkpoint's parallelism); registers every state of the checkpoint.
pub fn restore_full_snapshots(
    engine: &mut dyn StateBackend,
    metadata: &CheckpointMetadata,
    storage: &dyn CheckpointStorage,
) -> Result<u64> {
    check_max_parallelism(metadata, engine)?;
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
