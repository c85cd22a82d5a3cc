//! Checkpoints: storage, metadata, the canonical full snapshot, the state digest, and the
//! job-level coordinator. Formats: `docs/formats.md`.

pub mod attempt;
pub mod canonical;
pub mod coordinator;
pub mod digest;
pub mod local_recovery;
pub mod metadata;
pub mod restore;
pub mod storage;

pub use attempt::CheckpointAttempt;
pub use coordinator::{
    CheckpointCoordinator, GcReport, PendingCheckpoint, RestoreMode, collect_garbage, load_latest,
    load_metadata,
};
pub use digest::StateDigest;
pub use local_recovery::{LocalRecovery, RecoveryReads, retain_completed, subtask_storage};
pub use metadata::{
    CheckpointMetadata, FileRef, LEGACY_KEY_CODEC, NamedFile, SnapshotHandle, SubtaskHandle,
    union_key_codec, union_states,
};
pub use storage::{CheckpointStorage, DirectoryStorage, FileWriter, MemoryStorage, PutFile};

/// How a backend snapshots its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SnapshotKind {
    /// The canonical full snapshot, readable by every backend.
    Full,
    /// RocksDB: the instance's SST files, uploading only those no confirmed checkpoint holds.
    /// The heap backend takes full snapshots when asked for this.
    #[default]
    Incremental,
}
