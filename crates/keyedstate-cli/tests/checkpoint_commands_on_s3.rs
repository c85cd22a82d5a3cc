//! `inspect`, `verify`, `restore` and `gc` of a checkpoint root on an S3-compatible server,
//! named by its `s3://` URL, with the endpoint and credentials in the `AWS_*` environment, as a
//! user points the tool at a bucket.

mod common;

use common::text;
use keyedstate::checkpoint::{
    CheckpointCoordinator, CheckpointMetadata, CheckpointStorage, SnapshotHandle,
};
use keyedstate::heap::HeapBackend;
use keyedstate::job;
use keyedstate::{KeyedStateBackend, MaxParallelism, SnapshotKind, ValueStateDescriptor};
use keyedstate_object_store::ObjectStoreStorage;
use keyedstate_testkit::s3_server::S3Server;
use object_store::ObjectStore;
use std::process::{Command, Output};
use std::sync::Arc;

fn keyedstate(server: &S3Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keyedstate"))
        .args(args)
        .envs(server.env())
        .output()
        .expect("keyedstate runs")
}

/// An S3 client of the server's bucket `bucket`.
fn bucket_client(server: &S3Server) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_bucket_name("bucket")
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap()
}

/// A heap job of two subtasks with three full checkpoints in `url` (one retained).
/// Three full checkpoints of two heap subtasks; returns the last one's metadata.
fn write_job(server: &S3Server, url: &str) -> CheckpointMetadata {
    let store = bucket_client(server);
    let storage: Arc<dyn CheckpointStorage> =
        Arc::new(ObjectStoreStorage::new(Arc::new(store), "jobs/one", url));
    let max_p = MaxParallelism::new(128).unwrap();
    let backends: Vec<KeyedStateBackend> = (0..2)
        .map(|i| HeapBackend::open(max_p, max_p.range_for_subtask(2, i).unwrap()).unwrap())
        .collect();
    let mut coordinator = CheckpointCoordinator::open(storage, 1).unwrap();
    let mut last = None;
    for round in 0..3u64 {
        for backend in &backends {
            let value = backend
                .value_state(&ValueStateDescriptor::<u64>::new("v"))
                .unwrap();
            for key in 0..1_000u64 {
                if backend.set_current_key(&key).is_ok() {
                    value.update(&(key + round)).unwrap();
                }
            }
        }
        last = Some(job::checkpoint(&backends, &mut coordinator, SnapshotKind::Full).unwrap());
    }
    last.expect("three checkpoints")
}

#[test]
fn commands_take_an_s3_url_as_the_checkpoint_root() {
    let server = S3Server::start();
    server.create_bucket("bucket");
    let url = "s3://bucket/jobs/one";
    write_job(&server, url);

    let out = keyedstate(&server, &["verify", url]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "verify: {said}");
    assert!(said.contains("checkpoint 3"), "{said}");

    let out = keyedstate(&server, &["inspect", "s3://bucket/jobs/one/chk-3"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "inspect: {said}");

    let target = tempfile::tempdir().unwrap();
    let into = target.path().join("restored");
    let out = keyedstate(
        &server,
        &[
            "restore",
            url,
            "--parallelism",
            "3",
            "--subtask",
            "1",
            "--into",
            into.to_str().unwrap(),
        ],
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "restore: {said}");

    let out = keyedstate(&server, &["gc", url]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "gc: {said}");

    // A missing bucket is a clear error, not a panic.
    let out = keyedstate(&server, &["verify", "s3://no-such-bucket/x"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        !out.status.success() && said.contains("keyedstate:"),
        "{said}"
    );
    assert!(!said.contains("panicked"), "{said}");
}

/// A short demo run on `backend` checkpointing to `url`, with one more option; asserts it passed
/// its checks and returns what it printed.
fn run_demo(server: &S3Server, backend: &str, url: &str, option: &str) -> String {
    let out = keyedstate(
        server,
        &[
            "demo",
            "--backend",
            backend,
            "--keys",
            "2000",
            "--records",
            "20000",
            "--checkpoint-every",
            "5000",
            option,
            "--checkpoints",
            url,
        ],
    );
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "demo on {url}: {said}");
    assert!(said.contains("check: OK"), "{said}");
    said
}

#[test]
fn the_demo_checkpoints_to_s3_and_its_restore_check_passes() {
    let server = S3Server::start();
    server.create_bucket("demo");
    for backend in ["rocksdb", "heap"] {
        let url = format!("s3://demo/{backend}");
        let said = run_demo(&server, backend, &url, "--rescale-to=3");
        assert!(said.contains(&format!("checkpoints {url}")), "{said}");
        let out = keyedstate(&server, &["verify", &url]);
        assert!(out.status.success(), "verify {url}: {}", text(&out.stderr));
    }
}

#[test]
fn verify_finds_a_corrupted_and_a_missing_object_on_s3() {
    let server = S3Server::start();
    server.create_bucket("bucket");
    let url = "s3://bucket/jobs/one";
    let metadata = write_job(&server, url);
    let store = bucket_client(&server);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let SnapshotHandle::Full { file } = &metadata.subtasks[1].snapshot else {
        panic!("a full snapshot");
    };
    assert!(file.path.starts_with("chk-3/"), "{}", file.path);
    let snapshot = object_store::path::Path::from(format!("jobs/one/{}", file.path));
    let mut bytes = runtime
        .block_on(async { store.get(&snapshot).await?.bytes().await })
        .unwrap()
        .to_vec();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    runtime
        .block_on(store.put(&snapshot, bytes.into()))
        .unwrap();
    let out = keyedstate(&server, &["verify", url]);
    let said = text(&out.stderr);
    assert!(!out.status.success(), "a flipped bit is found");
    assert!(
        said.contains("corruption") && said.contains("subtask-1.snapshot"),
        "{said}"
    );
    runtime.block_on(store.delete(&snapshot)).unwrap();
    let out = keyedstate(&server, &["verify", url]);
    let said = text(&out.stderr);
    assert!(!out.status.success());
    assert!(said.contains("subtask-1.snapshot is missing"), "{said}");
}

#[test]
fn the_demo_with_local_recovery_restores_without_reading_s3() {
    let server = S3Server::start();
    server.create_bucket("demo");
    for backend in ["rocksdb", "heap"] {
        let url = format!("s3://demo/local-{backend}");
        let said = run_demo(&server, backend, &url, "--local-recovery");
        assert!(
            said.contains(&format!("0 files (0 bytes) from {url}")),
            "every file from the local copies: {said}"
        );
    }
}

/// `verify --digest`'s last line: equal for equal logical state.
fn digest_of(server: &S3Server, checkpoint: &str) -> String {
    let out = keyedstate(server, &["verify", checkpoint, "--digest"]);
    assert!(
        out.status.success(),
        "verify {checkpoint}: {}",
        text(&out.stderr)
    );
    text(&out.stdout).lines().last().unwrap().to_owned()
}

#[test]
fn rescale_streams_from_one_store_to_another_and_to_and_from_directories() {
    let server = S3Server::start();
    server.create_bucket("bucket");
    server.create_bucket("other");
    let input = "s3://bucket/jobs/one";
    write_job(&server, input);
    let expected = digest_of(&server, input);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("from-s3");
    let local = local.to_str().unwrap();
    for (from, to, backend) in [
        (input, "s3://other/rescaled", "rocksdb"),
        (input, "s3://bucket/jobs/heap-3", "heap"),
        (input, local, "rocksdb"),
        (local, "s3://other/from-dir", "rocksdb"),
    ] {
        let out = keyedstate(
            &server,
            &[
                "rescale",
                from,
                "--parallelism",
                "3",
                "--out",
                to,
                "--backend",
                backend,
            ],
        );
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert!(out.status.success(), "rescale {from} -> {to}: {said}");
        assert!(said.contains(&format!("into {to}/chk-")), "{said}");
        assert_eq!(digest_of(&server, to), expected, "{from} -> {to}");
    }
    // A store that holds a checkpoint, or one inside the input, is refused and left alone.
    for (to, why) in [
        ("s3://other/rescaled", "is not empty"),
        ("s3://bucket/jobs/one/inner", "must not contain each other"),
    ] {
        let out = keyedstate(
            &server,
            &["rescale", input, "--parallelism", "2", "--out", to],
        );
        let said = text(&out.stderr);
        assert!(!out.status.success() && said.contains(why), "{to}: {said}");
    }
    assert_eq!(digest_of(&server, "s3://other/rescaled"), expected);
}
