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
                // As Flink: the 9 elements in old-subtask order, in contiguous blocks, the first
                // 9 % p subtasks taking one more.
                let all = [0, 1, 2, 10, 11, 12, 20, 21, 22];
                let expected: &[u64] = match (parallelism, index) {
                    (2, 0) => &all[..5],
                    (2, 1) => &all[5..],
                    (5, i) if i < 4 => &all[i as usize * 2..i as usize * 2 + 2],
                    (5, _) => &all[8..],
                    _ => unreachable!(),
                };
                assert_eq!(
                    offsets, expected,
                    "even split at {parallelism}, subtask {index}"
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

/// As Flink: new subtask i restores broadcast state from old subtask i % old parallelism; an old
/// subtask without the copy is an error, not an empty state.
#[test]
fn broadcast_state_comes_from_subtask_i_modulo_the_old_parallelism() {
    let (_dir, storage, mut coordinator) = directory_coordinator(1);
    let job = TestJob::new(Engine::Heap, 128, 3);
    let operators: Vec<OperatorStateBackend> = (0..3u32)
        .map(|i| {
            let ops = OperatorStateBackend::new();
            let rules = ops
                .broadcast_state(&MapStateDescriptor::<u32, u32>::new("rules"))
                .unwrap();
            // Copies that differ (a bug in the operator, or a partial update): which one each
            // new subtask gets is visible.
            rules.put(&0, &i).unwrap();
            ops
        })
        .collect();
    let metadata = job::checkpoint_with_operator_state(
        &job.backends,
        &operators,
        &mut coordinator,
        SnapshotKind::Full,
    )
    .unwrap();
    for parallelism in [2u32, 3, 7] {
        for index in 0..parallelism {
            let ops =
                OperatorStateBackend::restore(&metadata, storage.as_ref(), parallelism, index)
                    .unwrap();
            let rules = ops
                .broadcast_state(&MapStateDescriptor::<u32, u32>::new("rules"))
                .unwrap();
            assert_eq!(
                rules.get(&0).unwrap(),
                Some(index % 3),
                "{index} of {parallelism}"
            );
        }
    }
    // Subtask 1 has no copy: new subtasks 1 and 4 of 6 cannot restore one.
    let (_dir2, storage2, mut coordinator2) = directory_coordinator(1);
    let partial: Vec<OperatorStateBackend> = (0..3u32)
        .map(|i| {
            let ops = OperatorStateBackend::new();
            if i != 1 {
                ops.broadcast_state(&MapStateDescriptor::<u32, u32>::new("rules"))
                    .unwrap()
                    .put(&0, &i)
                    .unwrap();
            }
            ops
        })
        .collect();
    let metadata = job::checkpoint_with_operator_state(
        &job.backends,
        &partial,
        &mut coordinator2,
        SnapshotKind::Full,
    )
    .unwrap();
    for index in 0..6 {
        let restored = OperatorStateBackend::restore(&metadata, storage2.as_ref(), 6, index);
        if index % 3 == 1 {
            let err = restored
                .err()
                .unwrap_or_else(|| panic!("subtask {index}: restored"));
            assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
            assert!(err.to_string().contains("no copy in subtask 1"), "{err}");
        } else {
            restored.unwrap();
        }
    }
}
