//! Compiles keyedstate's C++ files, `cpp/sorted_flush.cc` (the key-hash memtable's sorted
//! flush, see src/memtable.rs), `cpp/live_files.cc` (a checkpoint's capture of the live
//! files, see src/ffi.rs), `cpp/write_batch.cc` (a write batch written from its bytes, see
//! src/batch_rep.rs) and `cpp/point_read.cc` (point reads through one reusable reader, see
//! src/ffi.rs), against the RocksDB sources librocksdb-sys builds: the same
//! headers, the same C++ standard and the defines that shape RocksDB's classes, so the
//! classes they share with librocksdb (Options, MemTableRep, DB) have one layout.

fn main() {
    let rocksdb_sys = std::env::var("DEP_ROCKSDB_CARGO_MANIFEST_DIR")
        .expect("librocksdb-sys (links = \"rocksdb\") tells its sources' directory");
    let source = std::path::Path::new(&rocksdb_sys).join("rocksdb");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .file("cpp/sorted_flush.cc")
        .file("cpp/live_files.cc")
        .file("cpp/write_batch.cc")
        .file("cpp/point_read.cc")
        .include(source.join("include"))
        .include(&source)
        .std("c++20")
        .define("NDEBUG", Some("1"))
        .define("HAVE_ALIGNED_NEW", None)
        .define("HAVE_UINT128_EXTENSION", None)
        .warnings(true)
        .extra_warnings(false);
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        build
            .define("OS_LINUX", None)
            .define("ROCKSDB_PLATFORM_POSIX", None)
            .define("ROCKSDB_LIB_IO_POSIX", None);
    } else if std::env::var("CARGO_CFG_TARGET_FAMILY").as_deref() == Ok("unix") {
        build
            .define("ROCKSDB_PLATFORM_POSIX", None)
            .define("ROCKSDB_LIB_IO_POSIX", None);
    }
    build.compile("keyedstate_cpp");
    println!("cargo:rerun-if-changed=cpp/sorted_flush.cc");
    println!("cargo:rerun-if-changed=cpp/live_files.cc");
    println!("cargo:rerun-if-changed=cpp/write_batch.cc");
    println!("cargo:rerun-if-changed=cpp/point_read.cc");
    println!("cargo:rerun-if-changed=cpp/status_code.h");
}
