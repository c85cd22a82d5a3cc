//! The one place where RocksDB's errors (`rocksdb::Error`, or a status code from `cpp/`) become
//! keyedstate's error: no RocksDB type leaks out.

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
        rocksdb_error(context, kind, &e.into_string())
    }
}

/// The error of a failed call into keyedstate's own C++ (`cpp/`), which reports RocksDB's
/// status as a code: 1 corruption, 2 an invalid argument or an unsupported call, any other
/// an I/O error.
pub(crate) fn status_error(context: &str, code: i32, message: &str) -> Error {
    let kind = match code {
        1 => ErrorKind::Corruption,
        2 => ErrorKind::InvalidArgument,
        _ => ErrorKind::Io,
    };
    rocksdb_error(context, kind, message)
}

fn rocksdb_error(context: &str, kind: ErrorKind, message: &str) -> Error {
    Error::new(kind, format!("{context}: rocksdb: {message}"))
}
