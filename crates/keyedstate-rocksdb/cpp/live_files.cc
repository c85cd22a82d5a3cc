// The live files of a RocksDB instance captured at one instant, to be copied later (see
// `LiveFileCapture` in src/ffi.rs for the Rust side, src/snapshot.rs for its use).
//
// RocksDB's Checkpoint does both in one call: it turns file deletions off, lists the live files
// (GetLiveFilesStorageInfo: the SST files, the MANIFEST and the write-ahead log files with the
// sizes they have now, CURRENT's contents), links or copies them, and turns deletions on again.
// A checkpoint's synchronous part needs only the first two, which take microseconds; the
// copies (the log's tail and the MANIFEST are read, and the copies synced) are the asynchronous
// part's work. Until the capture is released no file it names is deleted, so compactions and
// flushes may run meanwhile: what they write is not in the list, and what they replace stays
// on disk. The C API has no GetLiveFilesStorageInfo, hence this file.

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "rocksdb/db.h"
#include "rocksdb/metadata.h"
#include "rocksdb/options.h"

// The C API's database handle, as rocksdb/db/c.cc defines it (the same definition).
struct rocksdb_t {
  rocksdb::DB* rep;
};

// A capture: the database (file deletions off until released) and its live files.
struct keyedstate_live_files {
  rocksdb::DB* db;
  std::vector<rocksdb::LiveFileStorageInfo> files;
};

namespace {

char* copy_error(const rocksdb::Status& status) {
  return strdup(status.ToString().c_str());
}

}  // namespace

// Turns file deletions off and lists the live files without flushing: the write-ahead log
// files are listed with the bytes they hold now (every write made so far). On failure returns
// null, with `*error` a malloc'ed message, and deletions are on again.
extern "C" keyedstate_live_files* keyedstate_live_files_capture(rocksdb_t* db,
                                                                 char** error) {
  rocksdb::Status status = db->rep->DisableFileDeletions();
  if (!status.ok()) {
    *error = copy_error(status);
    return nullptr;
  }
  rocksdb::LiveFilesStorageInfoOptions options;
  // Never flush: the memtables' writes are in the log files, which are copied.
  options.wal_size_for_flush = std::numeric_limits<uint64_t>::max();
  auto* capture = new keyedstate_live_files{db->rep, {}};
  status = db->rep->GetLiveFilesStorageInfo(options, &capture->files);
  if (!status.ok()) {
    db->rep->EnableFileDeletions();
    delete capture;
    *error = copy_error(status);
    return nullptr;
  }
  return capture;
}

extern "C" size_t keyedstate_live_files_count(const keyedstate_live_files* capture) {
  return capture->files.size();
}

// What keyedstate needs of a file's description. `kind`: 1 a write-ahead log file, 2 an SST
// file, 0 anything else (MANIFEST, CURRENT, OPTIONS). The pointers stay valid until the capture
// is released.
extern "C" void keyedstate_live_files_at(const keyedstate_live_files* capture, size_t i,
                                         const char** name, size_t* name_len,
                                         const char** directory, size_t* directory_len,
                                         uint64_t* size, unsigned char* trim_to_size,
                                         const char** replacement, size_t* replacement_len,
                                         int* kind) {
  const rocksdb::LiveFileStorageInfo& file = capture->files[i];
  *name = file.relative_filename.data();
  *name_len = file.relative_filename.size();
  *directory = file.directory.data();
  *directory_len = file.directory.size();
  *size = file.size;
  *trim_to_size = file.trim_to_size ? 1 : 0;
  *replacement = file.replacement_contents.data();
  *replacement_len = file.replacement_contents.size();
  switch (file.file_type) {
    case rocksdb::kWalFile:
      *kind = 1;
      break;
    case rocksdb::kTableFile:
      *kind = 2;
      break;
    default:
      *kind = 0;
  }
}

// Turns file deletions on again (each capture turned them off once) and frees the capture.
extern "C" void keyedstate_live_files_release(keyedstate_live_files* capture) {
  capture->db->EnableFileDeletions();
  delete capture;
}
