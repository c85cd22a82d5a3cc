//! `_metadata` is written only where none is: a directory links it into place (a rename would
//! replace the first writer's), memory checks first, and both refuse the second with
//! `InvalidArgument`, keeping the first.

use keyedstate_core::ErrorKind;
use keyedstate_core::checkpoint::{CheckpointStorage, DirectoryStorage, MemoryStorage};

#[test]
fn a_second_metadata_for_one_checkpoint_id_is_refused_on_a_directory_and_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let directory = DirectoryStorage::new(dir.path()).unwrap();
    let memory = MemoryStorage::new();
    for storage in [&directory as &dyn CheckpointStorage, &memory] {
        storage.write_metadata(1, b"first").unwrap();
        let err = storage.write_metadata(1, b"second").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(err.to_string().contains("another writer"), "{err}");
        assert_eq!(storage.read_metadata(1).unwrap(), b"first");
    }
    // No temporary file is left beside the first `_metadata`.
    assert_eq!(
        directory.list_files("chk-1").unwrap(),
        vec!["chk-1/_metadata"]
    );
}
