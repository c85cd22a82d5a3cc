//! Operator state is checkpointed with the keyed state and redistributed on restore as its kind
//! says: list state split evenly (round robin), union list state to every subtask, broadcast
//! state copied to every subtask.

mod common;

use common::{TestJob, directory_coordinator};
use keyedstate::job::{self, Engine};
use keyedstate::{
    ErrorKind, ListStateDescriptor, MapStateDescriptor, OperatorStateBackend, SnapshotKind,
};

/// Subtask `i` of 3 holds list [i*10, i*10+1, i*10+2], union [100+i] and broadcast {1: "one"}.
fn operator_states() -> Vec<OperatorStateBackend> {
    (0..3u64)
        .map(|i| {
            let ops = OperatorStateBackend::new();
            let list = ops
                .list_state(&ListStateDescriptor::<u64>::new("offsets"))
                .unwrap();
            list.update(&[i * 10, i * 10 + 1, i * 10 + 2]).unwrap();
            ops.union_list_state(&ListStateDescriptor::<u64>::new("watermarks"))
                .unwrap()
                .add(&(100 + i))
                .unwrap();
            let rules = ops
                .broadcast_state(&MapStateDescriptor::<u32, String>::new("rules"))
                .unwrap();
            rules.put(&1, &"one".to_owned()).unwrap();
            rules.put(&2, &"two".to_owned()).unwrap();
            rules.remove(&2).unwrap();
            ops
        })
        .collect()
}

#[test]
fn operator_state_is_redistributed_by_kind() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::Heap, 128, 3);
    job.write_round(0);
    let metadata = job::checkpoint_with_operator_state(
        &job.backends,
        &operator_states(),
        &mut coordinator,
        SnapshotKind::Full,
    )
    .unwrap();
    assert!(metadata.subtasks.iter().all(|h| h.operator_state.is_some()));

    for parallelism in [3u32, 2, 5] {
        let mut all_offsets = Vec::new();
        for index in 0..parallelism {
            let ops =
                OperatorStateBackend::restore(&metadata, storage.as_ref(), parallelism, index)
                    .unwrap();
            let offsets = ops
                .list_state(&ListStateDescriptor::<u64>::new("offsets"))
                .unwrap()
                .get()
                .unwrap();
            if parallelism == 3 {
                let i = u64::from(index);
                assert_eq!(
                    offsets,
                    vec![i * 10, i * 10 + 1, i * 10 + 2],
                    "same parallelism: own list back"
                );
            } else {
                // 9 elements round robin: subtask j gets elements j, j+p, j+2p, ...
                let expected = (9 + parallelism - 1 - index) / parallelism;
                assert_eq!(
                    offsets.len() as u32,
                    expected,
                    "even split at {parallelism}"
                );
            }
            all_offsets.extend(offsets);
            let watermarks = ops
                .union_list_state(&ListStateDescriptor::<u64>::new("watermarks"))
                .unwrap()
                .get()
                .unwrap();
            assert_eq!(
                watermarks,
                vec![100, 101, 102],
                "union: every subtask gets all"
            );
            let rules = ops
                .broadcast_state(&MapStateDescriptor::<u32, String>::new("rules"))
                .unwrap();
            assert_eq!(
                rules.entries().unwrap(),
                vec![(1, "one".to_owned())],
                "broadcast: identical copies"
            );
            assert_eq!(rules.get(&1).unwrap().as_deref(), Some("one"));
        }
        all_offsets.sort();
        assert_eq!(
            all_offsets,
            vec![0, 1, 2, 10, 11, 12, 20, 21, 22],
            "no element lost or doubled at {parallelism}"
        );
    }
}

#[test]
fn operator_state_registration_is_checked() {
    let ops = OperatorStateBackend::new();
    ops.list_state(&ListStateDescriptor::<u64>::new("s"))
        .unwrap();
    let err = ops
        .union_list_state(&ListStateDescriptor::<u64>::new("s"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
    let err = ops
        .list_state(&ListStateDescriptor::<String>::new("s"))
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::IncompatibleState);
}

#[test]
fn operator_state_survives_the_offline_rescale_path() {
    // What `keyedstate rescale` does per target subtask: restore, then write it into the new root.
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::RocksDb, 128, 3);
    job.write_round(0);
    let metadata = job::checkpoint_with_operator_state(
        &job.backends,
        &operator_states(),
        &mut coordinator,
        SnapshotKind::Incremental,
    )
    .unwrap();
    let (_out_dir, out_storage, mut out) = directory_coordinator(1);
    let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 2).unwrap();
    let operators: Vec<OperatorStateBackend> = (0..2)
        .map(|i| OperatorStateBackend::restore(&metadata, storage.as_ref(), 2, i).unwrap())
        .collect();
    let rescaled = job::checkpoint_with_operator_state(
        &restored.backends,
        &operators,
        &mut out,
        SnapshotKind::Incremental,
    )
    .unwrap();
    assert_eq!(rescaled.parallelism(), 2);
    assert!(rescaled.subtasks.iter().all(|h| h.operator_state.is_some()));
    // The new root holds every file itself: nothing refers back to the source root.
    let again = TestJob::restored(Engine::RocksDb, &rescaled, &out_storage, 2).unwrap();
    assert_eq!(again.digest(), job.digest());
}
