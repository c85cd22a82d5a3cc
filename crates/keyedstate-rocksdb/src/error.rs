//! The one place where `rocksdb::Error` becomes keyedstate's error: no RocksDB type leaks out.

use keyedstate_core::{Error, ErrorKind};

pub(crate) fn map_err(context: &str) -> impl FnOnce(rocksdb::Error) -> Error + '_ {
    move |e| {
        let kind = match e.kind() {
            rocksdb::ErrorKind::Corruption => ErrorKind::Corruption,
            rocksdb::ErrorKind::InvalidArgument | rocksdb::ErrorKind::NotSupported => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Io,
        };
        Error::new(kind, format!("{context}: rocksdb: {}", e.into_string()))
    }
}
