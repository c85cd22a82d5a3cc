//! `ObjectStoreStorage` against a real S3-compatible server on loopback
//! (`keyedstate_testkit::s3_server`: moto, started on a free port and stopped when the test
//! ends, also on failure).

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage};
use keyedstate_core::job;
use keyedstate_core::{
    ErrorKind, KeyedStateBackend, MaxParallelism, SnapshotKind, ValueStateDescriptor,
};
use keyedstate_heap::HeapBackend;
use keyedstate_object_store::ObjectStoreStorage;
use keyedstate_testkit::s3_server::S3Server;
use std::io::Write;
use std::sync::Arc;

/// Storage under `prefix` of `bucket` on `server`.
fn storage(server: &S3Server, bucket: &str, prefix: &str) -> ObjectStoreStorage {
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(server.endpoint())
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    ObjectStoreStorage::new(Arc::new(store), prefix, format!("s3://{bucket}/{prefix}"))
}

#[test]
fn files_metadata_and_listings_on_an_s3_server() {
    let server = S3Server::start();
    server.create_bucket("checkpoints");
    // Parts of S3's smallest size, so a 12 MiB file is a multipart upload of three.
    let storage = storage(&server, "checkpoints", "job-1")
        .with_part_size(5 << 20)
        .with_transfer_concurrency(2);
    let data: Vec<u8> = (0..12 << 20).map(|i: u32| (i % 251) as u8).collect();
    let mut writer = storage.create("shared/big.sst").unwrap();
    writer.write_all(&data).unwrap();
    let file = writer.finish().unwrap();
    assert_eq!(file.size, data.len() as u64);
    storage.verify(&file).unwrap();
    assert_eq!(storage.read(&file).unwrap(), data);

    storage.write_metadata(1, b"first").unwrap();
    let err = storage.write_metadata(1, b"second").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert_eq!(storage.read_metadata(1).unwrap(), b"first");
    storage.put_bytes("chk-2/subtask-0.snapshot", b"x").unwrap();
    assert_eq!(
        storage.checkpoint_dirs().unwrap(),
        vec![(1, true), (2, false)]
    );
    assert_eq!(
        storage.list_files("shared").unwrap(),
        vec!["shared/big.sst".to_owned()]
    );
    storage.delete("shared/big.sst").unwrap();
    let err = storage.verify(&file).unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
}

fn write_state(backend: &KeyedStateBackend, round: u64) {
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    for key in 0..2_000u64 {
        if backend.set_current_key(&key).is_ok() {
            value.update(&(key * 10 + round)).unwrap();
        }
    }
}

#[test]
fn a_heap_job_checkpoints_to_s3_and_restores_rescaled() {
    let server = S3Server::start();
    server.create_bucket("jobs");
    let storage: Arc<dyn CheckpointStorage> = Arc::new(storage(&server, "jobs", "heap"));
    let max_p = MaxParallelism::new(128).unwrap();
    let backends: Vec<KeyedStateBackend> = (0..2)
        .map(|i| HeapBackend::open(max_p, max_p.range_for_subtask(2, i).unwrap()).unwrap())
        .collect();
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    for round in 0..2 {
        backends.iter().for_each(|b| write_state(b, round));
        job::checkpoint(&backends, &mut coordinator, SnapshotKind::Full).unwrap();
    }
    let expected = job::digest(&backends).unwrap();
    let latest = keyedstate_core::checkpoint::load_latest(storage.as_ref()).unwrap();
    assert_eq!(
        storage.checkpoint_dirs().unwrap(),
        vec![(2, true)],
        "retention of one"
    );
    for parallelism in [1, 3] {
        let restored: Vec<KeyedStateBackend> = (0..parallelism)
            .map(|i| {
                let range = max_p.range_for_subtask(parallelism, i).unwrap();
                HeapBackend::restore(max_p, range, &latest, storage.as_ref()).unwrap()
            })
            .collect();
        assert_eq!(
            job::digest(&restored).unwrap(),
            expected,
            "at parallelism {parallelism}"
        );
    }
}
