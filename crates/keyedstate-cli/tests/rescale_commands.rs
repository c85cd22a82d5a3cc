//! `keyedstate rescale`, `keyedstate restore` and `keyedstate demo --rescale-to`.

mod common;

use common::{keyedstate, text};

use std::collections::BTreeMap;
use std::path::Path;

fn demo(dir: &Path, backend: &str, parallelism: &str) -> String {
    let out = keyedstate(&[
        "demo",
        "--backend",
        backend,
        "--keys",
        "500",
        "--records",
        "6000",
        "--parallelism",
        parallelism,
        "--dir",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    dir.join("checkpoints").to_str().unwrap().to_owned()
}

fn digest(checkpoint: &str) -> String {
    let out = keyedstate(&["verify", checkpoint, "--digest"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().last().unwrap().to_owned()
}

/// Every file below `dir` with its size and modification time.
fn listing(dir: &Path) -> BTreeMap<String, (u64, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(d).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                out.insert(
                    entry.path().display().to_string(),
                    (meta.len(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

#[test]
fn rescale_writes_checkpoints_with_the_same_digest_and_leaves_its_input_alone() {
    let dir = tempfile::tempdir().unwrap();
    let input = demo(dir.path(), "rocksdb", "3");
    let before = listing(Path::new(&input));
    let original = digest(&input);
    for (parallelism, backend) in [("7", "rocksdb"), ("2", "heap"), ("1", "rocksdb")] {
        let out = dir.path().join(format!("out-{parallelism}-{backend}"));
        let run = keyedstate(&[
            "rescale",
            &input,
            "--parallelism",
            parallelism,
            "--out",
            out.to_str().unwrap(),
            "--backend",
            backend,
        ]);
        let stdout = text(&run.stdout);
        assert!(run.status.success(), "{stdout}{}", text(&run.stderr));
        assert!(
            stdout.contains(&format!("from parallelism 3 to {parallelism}")),
            "{stdout}"
        );
        assert!(
            stdout.contains("read ") && stdout.contains(" bytes, wrote "),
            "{stdout}"
        );
        let rescaled = out.to_str().unwrap();
        assert_eq!(digest(rescaled), original, "{parallelism} {backend}");
        let inspect = text(&keyedstate(&["inspect", rescaled]).stdout);
        assert!(
            inspect.contains(&format!("parallelism {parallelism}\n")),
            "{inspect}"
        );
    }
    assert_eq!(listing(Path::new(&input)), before, "the input is unchanged");
}

#[test]
fn rescale_refuses_an_output_inside_its_input_or_not_empty() {
    let dir = tempfile::tempdir().unwrap();
    let input = demo(dir.path(), "heap", "2");
    let inside = format!("{input}/rescaled");
    let out = keyedstate(&["rescale", &input, "--parallelism", "3", "--out", &inside]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("must not contain each other"),
        "{}",
        text(&out.stderr)
    );
    assert!(!Path::new(&inside).exists());
    let busy = dir.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("x"), b"x").unwrap();
    let out = keyedstate(&[
        "rescale",
        &input,
        "--parallelism",
        "3",
        "--out",
        busy.to_str().unwrap(),
    ]);
    assert!(
        text(&out.stderr).contains("is not empty"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn rescale_of_a_corrupt_source_names_the_file_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let input = demo(dir.path(), "rocksdb", "2");
    let sst = std::fs::read_dir(Path::new(&input).join("shared"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let mut bytes = std::fs::read(sst.path()).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 4;
    std::fs::write(sst.path(), bytes).unwrap();
    let out_dir = dir.path().join("out");
    let out = keyedstate(&[
        "rescale",
        &input,
        "--parallelism",
        "3",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(sst.file_name().to_str().unwrap()),
        "{stderr}"
    );
    assert!(!out_dir.exists(), "no output is left");
}

#[test]
fn restore_materializes_a_plain_rocksdb_directory() {
    let dir = tempfile::tempdir().unwrap();
    let input = demo(dir.path(), "rocksdb", "2");
    let into = dir.path().join("subtask-1-of-3");
    let out = keyedstate(&[
        "restore",
        &input,
        "--parallelism",
        "3",
        "--subtask",
        "1",
        "--into",
        into.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut cfs = rocksdb::DB::list_cf(&rocksdb::Options::default(), &into).unwrap();
    cfs.sort();
    assert_eq!(
        cfs,
        vec!["average", "buckets", "count", "default", "last", "recent"]
    );
    // Open with a stand-in for the list merge operator, as any RocksDB tool would need.
    let mut options = rocksdb::Options::default();
    options.set_merge_operator_associative("keyedstate.list-append.v1", |_, existing, ops| {
        let mut merged = existing.map(<[u8]>::to_vec).unwrap_or_default();
        ops.iter().for_each(|op| merged.extend_from_slice(op));
        Some(merged)
    });
    let descriptors = cfs
        .iter()
        .map(|name| rocksdb::ColumnFamilyDescriptor::new(name, options.clone()));
    let db = rocksdb::DB::open_cf_descriptors_read_only(
        &rocksdb::Options::default(),
        &into,
        descriptors,
        false,
    )
    .unwrap();
    let last = db.cf_handle("last").unwrap();
    let groups: Vec<u8> = db
        .iterator_cf(last, rocksdb::IteratorMode::Start)
        .map(|kv| kv.unwrap().0[0])
        .collect();
    assert!(!groups.is_empty());
    // Subtask 1 of 3 at max parallelism 128 holds key groups 43 to 85.
    assert!(groups.iter().all(|&g| (43..=85).contains(&g)), "{groups:?}");
}

#[test]
fn demo_rescale_to_checks_every_key_after_restoring_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    for backend in ["rocksdb", "heap"] {
        let out = keyedstate(&[
            "demo",
            "--backend",
            backend,
            "--keys",
            "500",
            "--records",
            "4000",
            "--parallelism",
            "2",
            "--rescale-to",
            "5",
            "--dir",
            dir.path().join(backend).to_str().unwrap(),
        ]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
        assert!(
            stdout.contains("(parallelism 2) into 5 subtasks"),
            "{stdout}"
        );
        // The job, its restore at 5, and the checkpoint the restored job took.
        assert_eq!(
            stdout.matches("check: OK (500 of 500 keys").count(),
            3,
            "{stdout}"
        );
        let per_subtask = stdout
            .lines()
            .rfind(|l| l.starts_with("keys per subtask:"))
            .unwrap();
        assert_eq!(
            per_subtask.split_whitespace().count(),
            3 + 5,
            "{per_subtask}"
        );
    }
}
