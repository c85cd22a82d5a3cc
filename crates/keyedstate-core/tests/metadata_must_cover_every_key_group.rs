//! A `_metadata` with a valid checksum but no subtasks (or subtasks that do not cover the key
//! groups) is `Corruption`: it neither verifies nor restores, and garbage collection refuses to
//! run rather than delete every state file of the root.

use keyedstate_core::checkpoint::{
    CheckpointMetadata, CheckpointStorage, FileRef, MemoryStorage, SnapshotHandle, SubtaskHandle,
    collect_garbage, load_metadata,
};
use keyedstate_core::{ErrorKind, MaxParallelism};

fn handle(subtask: u32, parallelism: u32, max_p: MaxParallelism, path: &str) -> SubtaskHandle {
    SubtaskHandle {
        subtask,
        key_group_range: max_p.range_for_subtask(parallelism, subtask).unwrap(),
        snapshot: SnapshotHandle::Full {
            file: FileRef {
                path: path.to_owned(),
                size: 0,
                crc32c: 0,
            },
        },
        operator_state: None,
        heap_timers: None,
        states: Vec::new(),
        key_codec: None,
    }
}

fn metadata(subtasks: Vec<SubtaskHandle>) -> CheckpointMetadata {
    CheckpointMetadata {
        version: 3,
        checkpoint_id: 1,
        max_parallelism: MaxParallelism::new(128).unwrap(),
        states: Vec::new(),
        subtasks,
        not_owned: Vec::new(),
        key_codec: None,
    }
}

/// `metadata.encode()` refuses what it would not read back: write the bytes by hand.
fn encode_unchecked(metadata: &CheckpointMetadata) -> Vec<u8> {
    let body = format!(
        "keyedstate-checkpoint 2\n{}\n",
        serde_json::to_string_pretty(metadata).unwrap()
    );
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{body}crc32c {crc:08x}\n").into_bytes()
}

#[test]
fn metadata_without_subtasks_is_corruption_and_gc_refuses() {
    let storage = MemoryStorage::new();
    storage
        .put_bytes("shared/state.sst", b"referenced by the real job")
        .unwrap();
    storage
        .write_metadata(1, &encode_unchecked(&metadata(Vec::new())))
        .unwrap();
    let err = load_metadata(&storage, 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(err.to_string().contains("no subtasks"), "{err}");
    let err = collect_garbage(&storage, false).unwrap_err();
    assert!(
        err.to_string().contains("refusing to collect garbage"),
        "{err}"
    );
    assert_eq!(
        storage.list_files("shared").unwrap(),
        vec!["shared/state.sst"]
    );
}

#[test]
fn metadata_whose_subtasks_miss_key_groups_is_corruption() {
    let max_p = MaxParallelism::new(128).unwrap();
    // Two of three subtasks: key groups 86..=127 are nobody's.
    let partial = metadata(vec![
        handle(0, 3, max_p, "chk-1/subtask-0.snapshot"),
        handle(1, 3, max_p, "chk-1/subtask-1.snapshot"),
    ]);
    let storage = MemoryStorage::new();
    storage
        .write_metadata(1, &encode_unchecked(&partial))
        .unwrap();
    let err = load_metadata(&storage, 1).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(partial.encode().is_err() || partial.validate().is_err());
}
