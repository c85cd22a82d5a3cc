//! `keyedstate demo` runs a job on either backend and its totals check passes; bad arguments
//! give one clear line and a non-zero exit.

mod common;

use common::keyedstate;

#[test]
fn demo_check_passes_on_both_backends() {
    for backend in ["rocksdb", "heap"] {
        let dir = tempfile::tempdir().unwrap();
        let out = keyedstate(&[
            "demo",
            "--backend",
            backend,
            "--parallelism",
            "3",
            "--keys",
            "500",
            "--records",
            "5000",
            "--dir",
            dir.path().to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{backend}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("check: OK (500 of 500 keys"),
            "{backend}: {stdout}"
        );
        assert!(
            stdout.contains("recent\tlist\t500\t500"),
            "{backend}: {stdout}"
        );
        // Once for the job, once for its restored last checkpoint, once for the checkpoint the
        // restored job took.
        let checks = stdout
            .lines()
            .filter(|l| l.starts_with("check: OK (500 of 500 keys"))
            .count();
        assert_eq!(checks, 3, "{backend}: {stdout}");
        // The default restore mode leaves the restored checkpoint in place.
        assert!(
            stdout.contains(
                "restore mode no-claim: the restored job wrote checkpoint 2; the root holds \
                 checkpoints 1, 2"
            ),
            "{backend}: {stdout}"
        );
        // 5000 records, a barrier every 50000: only the one after the last record.
        assert!(
            stdout.contains("checkpoints: 1 completed, 0 failed"),
            "{backend}: {stdout}"
        );
        assert!(
            stdout.contains("restore: checkpoint "),
            "{backend}: {stdout}"
        );
        assert!(
            !dir.path().join("work/subtask-0").exists()
                && !dir.path().join("restore/subtask-0").exists(),
            "working directories are removed"
        );
    }
}

#[test]
fn demo_with_a_two_byte_key_group_prefix() {
    let out = keyedstate(&[
        "demo",
        "--max-parallelism",
        "1000",
        "--keys",
        "300",
        "--records",
        "3000",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("check: OK"),
        "{stdout}"
    );
}

#[test]
fn bad_arguments_fail_with_one_line() {
    for args in [
        &["demo", "--keys", "0"][..],
        &["demo", "--max-parallelism", "40000"][..],
        &["demo", "--parallelism", "200", "--max-parallelism", "128"][..],
    ] {
        let out = keyedstate(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("keyedstate: invalid argument:"),
            "{args:?}: {stderr}"
        );
    }
}
