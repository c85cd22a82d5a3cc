//! The pieces a distributed job's workers complete a checkpoint with: a subtask's handle sent
//! as bytes, an attempt every worker names alike, a checkpoint triggered at the id they agreed.

use keyedstate_core::checkpoint::{
    CheckpointAttempt, CheckpointCoordinator, FileRef, MemoryStorage, SnapshotHandle, SubtaskHandle,
};
use keyedstate_core::{ErrorKind, KeyGroupRange, MaxParallelism};
use std::sync::Arc;

fn handle() -> SubtaskHandle {
    let max = MaxParallelism::new(128).unwrap();
    SubtaskHandle {
        subtask: 1,
        key_group_range: KeyGroupRange::new(64, 127, max).unwrap(),
        snapshot: SnapshotHandle::Full {
            file: FileRef {
                path: "chk-3/0123456789abcdef/subtask-1.snapshot".to_owned(),
                size: 17,
                crc32c: 0xdead_beef,
            },
        },
        operator_state: None,
        heap_timers: None,
        states: Vec::new(),
        key_codec: Some("ks1:u32".to_owned()),
    }
}

#[test]
fn an_encoded_handle_decodes_to_itself_and_any_flipped_bit_is_corruption() {
    let bytes = handle().encode().unwrap();
    assert!(bytes.starts_with(b"keyedstate-subtask-handle 1\n"));
    assert_eq!(SubtaskHandle::decode(&bytes, "test").unwrap(), handle());
    for i in (0..bytes.len()).step_by(7) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x10;
        let e = SubtaskHandle::decode(&flipped, "test").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Corruption, "byte {i}: {e}");
    }
}

#[test]
fn a_handle_whose_file_escapes_the_root_is_refused() {
    let mut escaping = handle();
    escaping.snapshot = SnapshotHandle::Full {
        file: FileRef {
            path: "../outside".to_owned(),
            size: 1,
            crc32c: 0,
        },
    };
    let bytes = escaping.encode().unwrap();
    assert!(SubtaskHandle::decode(&bytes, "test").is_err());
}

#[test]
fn an_attempt_named_by_its_token_is_the_same_attempt() {
    let token = CheckpointAttempt::new_token();
    let a = CheckpointAttempt::named(9, &token).unwrap();
    let b = CheckpointAttempt::named(9, &token).unwrap();
    assert_eq!(a.dir(), b.dir());
    assert_eq!(a.dir(), format!("chk-9/{token}"));
    for bad in [
        "",
        "ABCDEF0123456789",
        "0123456789abcde",
        "0123456789abcdef0",
        "../x/../y/z",
    ] {
        let e = CheckpointAttempt::named(9, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
    }
}

#[test]
fn trigger_as_takes_the_agreed_id_and_refuses_an_earlier_one_or_a_second_in_flight() {
    let storage = Arc::new(MemoryStorage::new());
    let mut coordinator = CheckpointCoordinator::open(storage, 2).unwrap();
    let token = CheckpointAttempt::new_token();
    let pending = coordinator
        .trigger_as(CheckpointAttempt::named(20, &token).unwrap())
        .unwrap();
    assert_eq!(pending.id(), 20);
    let e = coordinator
        .trigger_as(CheckpointAttempt::named(30, &token).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    coordinator.abort(pending, &[]).unwrap();
    let e = coordinator
        .trigger_as(CheckpointAttempt::named(20, &token).unwrap())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(coordinator.trigger().unwrap().id(), 21);
}
