// Writes a write batch handed over as its bytes (src/batch_rep.rs builds them; `write_bytes`
// in src/ffi.rs is the Rust side), with RocksDB told which kinds of record it holds.
//
// A batch made from bytes through the C API (rocksdb_writebatch_create_from) is one whose
// kinds of record RocksDB does not know: every write reads the whole batch once more to learn
// them (WriteBatch::ComputeContentFlags, called by DBImpl::WriteImpl; about 265 instructions a
// record, a tenth of a buffered write). The Rust side knows them. So the batch here starts as
// an empty WriteBatch given one empty record of each kind the bytes hold, through WriteBatch's
// own calls (which set its flags: the flags say only which kinds occur), and then its bytes
// (`rep_`, protected: a subclass may set them) are replaced by the caller's, records, count
// and all.

#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "rocksdb/db.h"
#include "rocksdb/options.h"
#include "rocksdb/write_batch.h"
#include "status_code.h"

// The C API's database handle, as rocksdb/db/c.cc defines it (the same definition).
struct rocksdb_t {
  rocksdb::DB* rep;
};

namespace {

// The kinds of record, as `kinds` gives them (src/batch_rep.rs: KIND_*).
constexpr unsigned char kPut = 1;
constexpr unsigned char kDelete = 2;
constexpr unsigned char kMerge = 4;

class BatchOfBytes : public rocksdb::WriteBatch {
 public:
  // The batch `bytes` (a whole rep: header and records) whose records are of `kinds`.
  BatchOfBytes(const char* bytes, size_t len, unsigned char kinds) {
    // Empty keys and values in the default column family: only their kinds matter, and the
    // bytes below replace them.
    if (kinds & kPut) Put(rocksdb::Slice(), rocksdb::Slice()).PermitUncheckedError();
    if (kinds & kDelete) Delete(rocksdb::Slice()).PermitUncheckedError();
    if (kinds & kMerge) Merge(rocksdb::Slice(), rocksdb::Slice()).PermitUncheckedError();
    rep_.assign(bytes, len);
  }
};

}  // namespace

// Writes the batch `bytes` of records of `kinds` with RocksDB's default write options (the
// backend's). Returns 0 on success; on failure 1 for corruption, 2 for an invalid argument or
// an unsupported call, 3 for anything else, with `*error` a malloc'ed message.
extern "C" int keyedstate_write_batch_bytes(rocksdb_t* db, const char* bytes, size_t len,
                                            unsigned char kinds, char** error) {
  BatchOfBytes batch(bytes, len, kinds);
  rocksdb::Status status = db->rep->Write(rocksdb::WriteOptions(), &batch);
  if (status.ok()) {
    return 0;
  }
  return keyedstate_status_code(status, error);
}
