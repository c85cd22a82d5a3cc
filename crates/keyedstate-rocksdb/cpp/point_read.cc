// A point read through one reusable reader (src/ffi.rs: `PointReader` is the Rust side).
//
// The C API's rocksdb_get_pinned_cf allocates a rocksdb_pinnableslice_t for every read and
// its destroy frees it: a `new` and a `delete`, about 240 instructions a read together with
// the wrappers around them, of the ~3,400 a RocksDB map read costs in all. The reader here
// owns one PinnableSlice (and default ReadOptions, as the backend's) for all of its reads;
// the caller copies the value out and releases the slice before the next read, so no block
// stays pinned between reads (nor when the database closes).

#include <cstddef>
#include <cstring>

#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "status_code.h"

// The C API's handles, as rocksdb/db/c.cc defines them (the same definitions).
struct rocksdb_t {
  rocksdb::DB* rep;
};
struct rocksdb_column_family_handle_t {
  rocksdb::ColumnFamilyHandle* rep;
  bool immortal;
};

struct keyedstate_point_reader {
  rocksdb::ReadOptions options;
  rocksdb::PinnableSlice value;
};

extern "C" keyedstate_point_reader* keyedstate_point_reader_create() {
  return new keyedstate_point_reader();
}

extern "C" void keyedstate_point_reader_destroy(keyedstate_point_reader* reader) {
  delete reader;
}

// Reads `key` of `cf`. Returns 0 on success, with `*value` and `*value_len` the value (valid
// until keyedstate_point_reader_release or the reader's next read) or `*value` null when there
// is none; on failure 1 for corruption, 2 for an invalid argument or an unsupported call, 3
// for anything else, with `*error` a malloc'ed message.
extern "C" int keyedstate_point_read(rocksdb_t* db, rocksdb_column_family_handle_t* cf,
                                     keyedstate_point_reader* reader, const char* key,
                                     size_t key_len, const char** value, size_t* value_len,
                                     char** error) {
  reader->value.Reset();
  rocksdb::Status status =
      db->rep->Get(reader->options, cf->rep, rocksdb::Slice(key, key_len), &reader->value);
  if (status.ok()) {
    *value = reader->value.data();
    *value_len = reader->value.size();
    return 0;
  }
  *value = nullptr;
  *value_len = 0;
  if (status.IsNotFound()) {
    return 0;
  }
  return keyedstate_status_code(status, error);
}

// Releases what the last read pinned (a block of the block cache, or the value's own copy).
extern "C" void keyedstate_point_reader_release(keyedstate_point_reader* reader) {
  reader->value.Reset();
}
