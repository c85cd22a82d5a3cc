//! `ObjectStoreStorage` on `object_store`'s in-memory and local-file stores: files stream in
//! parts and ranges and come back checked, `_metadata` is written once, listings follow the
//! checkpoint layout, and a job checkpoints and restores through it. (The S3 server tests are
//! in `s3_server.rs`.)

use keyedstate_core::checkpoint::{CheckpointCoordinator, CheckpointStorage, FileRef};
use keyedstate_core::job;
use keyedstate_core::{
    ErrorKind, KeyedStateBackend, MaxParallelism, SnapshotKind, ValueStateDescriptor,
};
use keyedstate_heap::HeapBackend;
use keyedstate_object_store::ObjectStoreStorage;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use std::io::Write;
use std::sync::Arc;

/// Both stores, with parts of 1 KiB (so a few KiB make a multipart upload) and 2 in flight.
fn stores(dir: &std::path::Path) -> Vec<(Arc<dyn ObjectStore>, ObjectStoreStorage)> {
    let memory: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
    let local: Arc<dyn ObjectStore> =
        Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir).unwrap());
    [(memory, "memory://test/root"), (local, "file://test")]
        .into_iter()
        .map(|(store, name)| {
            let storage = ObjectStoreStorage::new(store.clone(), "root", name)
                .with_part_size(1024)
                .with_transfer_concurrency(2);
            (store, storage)
        })
        .collect()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn files_of_many_parts_come_back_whole_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    for (_, storage) in stores(dir.path()) {
        for (n, path) in [
            (0, "chk-1/empty"),
            (100, "chk-1/small"),
            (10_000, "shared/large.sst"),
        ] {
            let data = bytes(n, 3);
            let mut writer = storage.create(path).unwrap();
            // Written in odd-sized pieces that straddle the part boundaries.
            for piece in data.chunks(333) {
                writer.write_all(piece).unwrap();
            }
            let file = writer.finish().unwrap();
            assert_eq!((file.size, file.crc32c), (n as u64, crc32c::crc32c(&data)));
            assert_eq!(storage.read(&file).unwrap(), data, "{path}");
            storage.verify(&file).unwrap();
            let fetched = dir.path().join(format!("fetched-{n}"));
            let _ = std::fs::remove_file(&fetched);
            storage.fetch(&file, &fetched).unwrap();
            assert_eq!(std::fs::read(&fetched).unwrap(), data);
            let mut opened = Vec::new();
            std::io::Read::read_to_end(&mut storage.open(&file).unwrap(), &mut opened).unwrap();
            assert_eq!(opened, data);
        }
        // A local file uploaded, then uploaded again: the second finds it and takes it.
        let source = dir.path().join("source.sst");
        std::fs::write(&source, bytes(5_000, 9)).unwrap();
        let first = storage.put_file("shared/x.sst", &source).unwrap();
        assert!(first.created);
        let again = storage.put_file("shared/x.sst", &source).unwrap();
        assert_eq!((again.created, again.file), (false, first.file.clone()));
        std::fs::write(&source, bytes(5_000, 10)).unwrap();
        let err = storage.put_file("shared/x.sst", &source).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption, "other contents: {err}");
    }
}

#[test]
fn corrupt_and_missing_objects_are_corruption() {
    let dir = tempfile::tempdir().unwrap();
    for (store, storage) in stores(dir.path()) {
        let file = storage
            .put_bytes("chk-3/subtask-0.snapshot", &bytes(3_000, 1))
            .unwrap();
        let at = ObjectPath::from("root/chk-3/subtask-0.snapshot");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        // Same size, one byte changed.
        let mut changed = bytes(3_000, 1);
        changed[2_500] ^= 1;
        runtime.block_on(store.put(&at, changed.into())).unwrap();
        let err = storage.verify(&file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption);
        assert!(err.to_string().contains("checksum"), "{err}");
        // Shorter.
        runtime
            .block_on(store.put(&at, bytes(10, 1).into()))
            .unwrap();
        let err = storage.read(&file).unwrap_err();
        assert!(err.to_string().contains("10 bytes"), "{err}");
        storage.delete("chk-3/subtask-0.snapshot").unwrap();
        let err = storage.verify(&file).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corruption);
        assert!(err.to_string().contains("is missing"), "{err}");
        let absent = FileRef {
            path: "../outside".into(),
            size: 0,
            crc32c: 0,
        };
        assert_eq!(
            storage.verify(&absent).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }
}

#[test]
fn metadata_is_written_once_and_listings_follow_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    for (_, storage) in stores(dir.path()) {
        storage.write_metadata(1, b"first").unwrap();
        let err = storage.write_metadata(1, b"second").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.to_string().contains("another writer"), "{err}");
        assert_eq!(
            storage.read_metadata(1).unwrap(),
            b"first",
            "the first is kept"
        );
        storage.put_bytes("chk-2/subtask-0.snapshot", b"x").unwrap();
        storage.put_bytes("shared/a.sst", b"a").unwrap();
        storage.put_bytes("shared/b.sst", b"b").unwrap();
        assert_eq!(
            storage.checkpoint_dirs().unwrap(),
            vec![(1, true), (2, false)]
        );
        assert_eq!(
            storage.list_files("shared").unwrap(),
            vec!["shared/a.sst".to_owned(), "shared/b.sst".to_owned()]
        );
        storage.delete_dir("chk-2").unwrap();
        assert_eq!(storage.checkpoint_dirs().unwrap(), vec![(1, true)]);
        storage.delete("shared/a.sst").unwrap();
        storage.delete("shared/a.sst").unwrap();
        assert_eq!(
            storage.list_files("shared").unwrap(),
            vec!["shared/b.sst".to_owned()]
        );
        assert_eq!(
            storage.read_metadata(7).unwrap_err().kind(),
            ErrorKind::Corruption
        );
    }
}

fn write_state(backend: &KeyedStateBackend, round: u64) {
    let value = backend
        .value_state(&ValueStateDescriptor::<u64>::new("v"))
        .unwrap();
    for key in 0..500u64 {
        if backend.set_current_key(&key).is_ok() {
            value.update(&(key * 10 + round)).unwrap();
        }
    }
}

#[test]
fn a_job_checkpoints_and_restores_at_another_parallelism_through_an_object_store() {
    let storage: Arc<dyn CheckpointStorage> = Arc::new(
        ObjectStoreStorage::from_url("memory://bucket/job")
            .unwrap()
            .with_part_size(4096),
    );
    let max_p = MaxParallelism::new(128).unwrap();
    let backends: Vec<KeyedStateBackend> = (0..2)
        .map(|i| HeapBackend::open(max_p, max_p.range_for_subtask(2, i).unwrap()).unwrap())
        .collect();
    let mut coordinator = CheckpointCoordinator::open(storage.clone(), 2).unwrap();
    for round in 0..3 {
        backends.iter().for_each(|b| write_state(b, round));
        job::checkpoint(&backends, &mut coordinator, SnapshotKind::Full).unwrap();
    }
    let expected = job::digest(&backends).unwrap();
    let latest = keyedstate_core::checkpoint::load_latest(storage.as_ref()).unwrap();
    assert_eq!(latest.checkpoint_id, 3);
    assert_eq!(
        storage.checkpoint_dirs().unwrap(),
        vec![(2, true), (3, true)],
        "retention"
    );
    let restored: Vec<KeyedStateBackend> = (0..3)
        .map(|i| {
            HeapBackend::restore(
                max_p,
                max_p.range_for_subtask(3, i).unwrap(),
                &latest,
                storage.as_ref(),
            )
            .unwrap()
        })
        .collect();
    assert_eq!(job::digest(&restored).unwrap(), expected);
}
