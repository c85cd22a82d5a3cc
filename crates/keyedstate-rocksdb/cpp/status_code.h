// A failed RocksDB status as keyedstate's C++ entry points report it (src/error.rs:
// `status_error` is the Rust side): 1 for corruption, 2 for an invalid argument or an
// unsupported call, 3 for anything else, with `*error` set to a malloc'ed message.

#ifndef KEYEDSTATE_STATUS_CODE_H_
#define KEYEDSTATE_STATUS_CODE_H_

#include <cstring>

#include "rocksdb/status.h"

inline int keyedstate_status_code(const rocksdb::Status& status, char** error) {
  *error = strdup(status.ToString().c_str());
  if (status.IsCorruption()) {
    return 1;
  }
  if (status.IsInvalidArgument() || status.IsNotSupported()) {
    return 2;
  }
  return 3;
}

#endif  // KEYEDSTATE_STATUS_CODE_H_
