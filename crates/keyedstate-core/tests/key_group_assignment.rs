//! Flink's key-group assignment: ranges partition the key groups, and every key group belongs to
//! the subtask whose range holds it.

use keyedstate_core::{ErrorKind, KeyGroupRange, MaxParallelism};
use proptest::prelude::*;

#[test]
fn max_parallelism_accepts_1_to_32768_only() {
    for bad in [0, 32_769, u32::MAX] {
        assert_eq!(
            MaxParallelism::new(bad).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(MaxParallelism::new(1).unwrap().get(), 1);
    assert_eq!(MaxParallelism::new(32_768).unwrap().get(), 32_768);
}

#[test]
fn flink_example_ranges_for_three_subtasks_of_128() {
    let max_p = MaxParallelism::new(128).unwrap();
    let ranges: Vec<(u16, u16)> = (0..3)
        .map(|i| max_p.range_for_subtask(3, i).unwrap())
        .map(|r| (r.start(), r.end()))
        .collect();
    assert_eq!(ranges, vec![(0, 42), (43, 85), (86, 127)]);
}

#[test]
fn default_max_parallelism_follows_flink() {
    let cases = [
        (1, 128),
        (2, 128),
        (85, 128),
        (86, 256),
        (100, 256),
        (1000, 2048),
        (20_000, 32_768),
        (u32::MAX, 32_768),
    ];
    for (p, expected) in cases {
        assert_eq!(
            MaxParallelism::default_for(p).get(),
            expected,
            "parallelism {p}"
        );
    }
}

#[test]
fn parallelism_above_max_parallelism_is_rejected() {
    let max_p = MaxParallelism::new(4).unwrap();
    assert_eq!(
        max_p.range_for_subtask(5, 0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        max_p.range_for_subtask(0, 0).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        max_p.range_for_subtask(2, 2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        max_p.subtask_of(4, 2).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(KeyGroupRange::new(3, 4, max_p).is_err());
    assert!(KeyGroupRange::new(2, 1, max_p).is_err());
}

proptest! {
    #[test]
    fn subtask_ranges_partition_the_key_groups(max_p in 1u32..=32_768, p_seed in any::<u32>()) {
        let max_parallelism = MaxParallelism::new(max_p).unwrap();
        let p = 1 + p_seed % max_p.min(300);
        let mut next = 0u32;
        for i in 0..p {
            let range = max_parallelism.range_for_subtask(p, i).unwrap();
            prop_assert_eq!(u32::from(range.start()), next);
            next = u32::from(range.end()) + 1;
            for kg in [range.start(), range.end()] {
                prop_assert_eq!(max_parallelism.subtask_of(kg, p).unwrap(), i);
            }
        }
        prop_assert_eq!(next, max_p);
    }

    #[test]
    fn key_group_is_below_max_parallelism(bytes in proptest::collection::vec(any::<u8>(), 0..64), max_p in 1u32..=32_768) {
        let max_parallelism = MaxParallelism::new(max_p).unwrap();
        prop_assert!(u32::from(max_parallelism.key_group_of(&bytes)) < max_p);
    }
}
