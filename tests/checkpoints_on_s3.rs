//! Jobs of both engines checkpoint to a real S3-compatible server on loopback (moto, through
//! `keyedstate_testkit::s3_server`) and restore from it at the same and at other parallelisms;
//! a checkpoint while the server is unreachable fails with a typed error, the previous one
//! still restores, and the next one succeeds once the server is back.

mod common;

use common::TestJob;
use keyedstate::checkpoint::{CheckpointCoordinator, CheckpointStorage, load_latest};
use keyedstate::job::{self, Engine};
use keyedstate::{ErrorKind, SnapshotKind};
use keyedstate_object_store::ObjectStoreStorage;
use keyedstate_testkit::s3_server::{Proxy, S3Server};
use std::sync::Arc;
use std::time::Duration;

/// Storage under `prefix` of `bucket` at `endpoint`, with few and short retries so that an
/// outage fails a request within seconds (the defaults retry for minutes), and parts of S3's
/// smallest size.
fn storage(endpoint: &str, bucket: &str, prefix: &str) -> Arc<dyn CheckpointStorage> {
    let retry = object_store::RetryConfig {
        backoff: object_store::BackoffConfig {
            init_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    };
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .with_retry(retry)
        .with_client_options(
            object_store::ClientOptions::new()
                .with_allow_http(true)
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(10)),
        )
        .build()
        .unwrap();
    Arc::new(
        ObjectStoreStorage::new(Arc::new(store), prefix, format!("s3://{bucket}/{prefix}"))
            .with_part_size(5 << 20),
    )
}

#[test]
fn both_engines_checkpoint_to_s3_and_restore_at_other_parallelisms() {
    let server = S3Server::start();
    server.create_bucket("jobs");
    for (engine, kind) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::RocksDb, SnapshotKind::Full),
        (Engine::Heap, SnapshotKind::Full),
    ] {
        let prefix = format!("{}-{kind:?}", engine.name());
        let storage = storage(&server.endpoint(), "jobs", &prefix);
        let job = TestJob::new(engine, 128, 2);
        let mut coordinator = CheckpointCoordinator::open(storage.clone(), 2).unwrap();
        for round in 0..3 {
            job.write_round(round);
            job::checkpoint(&job.backends, &mut coordinator, kind).unwrap();
        }
        let expected = job::digest(&job.backends).unwrap();
        let latest = load_latest(storage.as_ref()).unwrap();
        assert_eq!(latest.checkpoint_id, 3);
        for parallelism in [2, 1, 3] {
            let restored = TestJob::restored(engine, &latest, &storage, parallelism).unwrap();
            assert_eq!(
                job::digest(&restored.backends).unwrap(),
                expected,
                "{prefix} restored at parallelism {parallelism}"
            );
        }
    }
}

#[test]
fn a_checkpoint_during_an_outage_fails_typed_and_the_next_succeeds() {
    let server = S3Server::start();
    server.create_bucket("jobs");
    let proxy = Proxy::start(server.port());
    let storage = storage(&proxy.endpoint(), "jobs", "outage");
    let job = TestJob::new(Engine::RocksDb, 128, 2);
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 1).unwrap();
    job.write_round(0);
    job::checkpoint(&job.backends, &mut coordinator, SnapshotKind::Incremental).unwrap();
    let first = job::digest(&job.backends).unwrap();

    job.write_round(1);
    proxy.set_up(false);
    let err =
        job::checkpoint(&job.backends, &mut coordinator, SnapshotKind::Incremental).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    assert!(
        err.to_string().contains("s3://jobs/outage"),
        "names the object: {err}"
    );
    proxy.set_up(true);

    // The previous checkpoint is whole and restores.
    let latest = load_latest(storage.as_ref()).unwrap();
    assert_eq!(latest.checkpoint_id, 1);
    let restored = TestJob::restored(Engine::RocksDb, &latest, &storage, 2).unwrap();
    assert_eq!(job::digest(&restored.backends).unwrap(), first);

    // And the job goes on: the next checkpoint completes and holds the newer state.
    job.write_round(2);
    let metadata =
        job::checkpoint(&job.backends, &mut coordinator, SnapshotKind::Incremental).unwrap();
    assert_eq!(metadata.checkpoint_id, 3);
    let restored = TestJob::restored(Engine::RocksDb, &metadata, &storage, 3).unwrap();
    assert_eq!(
        job::digest(&restored.backends).unwrap(),
        job::digest(&job.backends).unwrap()
    );
}

#[test]
fn two_writers_racing_for_one_checkpoint_id_on_s3_leave_the_first_whole() {
    let server = S3Server::start();
    server.create_bucket("jobs");
    for (case, (engine, kind)) in [
        (Engine::RocksDb, SnapshotKind::Incremental),
        (Engine::Heap, SnapshotKind::Full),
    ]
    .into_iter()
    .enumerate()
    {
        for loser_dies in [false, true] {
            let prefix = format!("race-{case}-{loser_dies}");
            let storage = storage(&server.endpoint(), "jobs", &prefix);
            common::race_for_one_checkpoint_id(engine, kind, &storage, loser_dies);
        }
    }
}
