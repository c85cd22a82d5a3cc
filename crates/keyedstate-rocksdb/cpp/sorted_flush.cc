// keyedstate's key-hash memtable with a sorted flush (see src/memtable.rs for the Rust side).
//
// RocksDB's HashSkipList memtable finds a key's entries through a hash of per-key skip lists,
// which makes record access fast, but its total-order iterator (what a flush reads) builds a
// new skip list of every entry, one insert at a time: for a memtable of 50,000 entries that is
// most of an incremental checkpoint's time. This rep delegates everything to a HashSkipList
// rep, and also notes each inserted entry in an array. Once the memtable is immutable (the
// only state a flush reads), its total-order iterator sorts that array instead: by the first
// 16 bytes of each user key, then, for equal prefixes, by the memtable's own comparator. A
// mutable memtable's total-order iterator is the HashSkipList's own.
//
// The prefix order agrees with the comparator only for the bytewise comparator (RocksDB's
// default, the one keyedstate's column families use): a key's first 16 bytes, zero-padded, as a
// big-endian number are smaller only if the key is lexicographically smaller. A mistake would
// not go unseen: RocksDB checks the key order of every flush (check_flush_compaction_key_order,
// on by default) and fails it as corruption.

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "memory/allocator.h"
#include "memory/arena.h"
#include "rocksdb/memtablerep.h"
#include "rocksdb/options.h"
#include "util/coding.h"

// The C API's options handle, as rocksdb/db/c.cc defines it (the same definition).
struct rocksdb_options_t {
  rocksdb::Options rep;
};

namespace keyedstate {
namespace {

using rocksdb::Allocator;
using rocksdb::Arena;
using rocksdb::KeyHandle;
using rocksdb::LookupKey;
using rocksdb::MemTableRep;
using rocksdb::MemTableRepFactory;
using rocksdb::Slice;

// An entry of the sorted array: the first 16 bytes of its user key, zero-padded, as a
// big-endian number in two words (a u64 key's entry key is 11 bytes: key group, length, 8
// bytes, namespace; its first 8 bytes alone are equal for most keys), and the entry (a
// memtable key: varint32 length, internal key, value).
struct Sorted {
  uint64_t high;
  uint64_t low;
  const char* entry;
};

Sorted SortedEntry(const char* entry) {
  uint32_t internal_len = 0;
  const char* key = rocksdb::GetVarint32Ptr(entry, entry + 5, &internal_len);
  // The internal key ends in 8 bytes of sequence number and type.
  size_t user_len = internal_len >= 8 ? internal_len - 8 : 0;
  unsigned char bytes[16] = {0};
  std::memcpy(bytes, key, std::min<size_t>(user_len, 16));
  uint64_t high = 0, low = 0;
  for (int i = 0; i < 8; ++i) high = (high << 8) | bytes[i];
  for (int i = 8; i < 16; ++i) low = (low << 8) | bytes[i];
  return Sorted{high, low, entry};
}

// Iterates a sorted array of entries; owns nothing.
class SortedIterator : public MemTableRep::Iterator {
 public:
  SortedIterator(const std::vector<Sorted>* sorted,
                 const MemTableRep::KeyComparator* compare)
      : sorted_(sorted), compare_(compare), at_(sorted->size()) {}

  bool Valid() const override { return at_ < sorted_->size(); }
  const char* key() const override { return (*sorted_)[at_].entry; }
  void Next() override { ++at_; }
  void Prev() override { at_ = at_ == 0 ? sorted_->size() : at_ - 1; }

  void Seek(const Slice& internal_key, const char* memtable_key) override {
    at_ = LowerBound(internal_key, memtable_key);
  }

  void SeekForPrev(const Slice& internal_key,
                   const char* memtable_key) override {
    // The last entry at or before the target: one before the first one after it.
    size_t first_after = LowerBound(internal_key, memtable_key);
    if (first_after < sorted_->size() &&
        Compare((*sorted_)[first_after].entry, internal_key, memtable_key) ==
            0) {
      at_ = first_after;
    } else {
      at_ = first_after == 0 ? sorted_->size() : first_after - 1;
    }
  }

  void SeekToFirst() override { at_ = 0; }
  void SeekToLast() override {
    at_ = sorted_->empty() ? 0 : sorted_->size() - 1;
  }

 private:
  int Compare(const char* entry, const Slice& internal_key,
              const char* memtable_key) const {
    return memtable_key != nullptr ? (*compare_)(entry, memtable_key)
                                   : (*compare_)(entry, internal_key);
  }

  // The index of the first entry not less than the target.
  size_t LowerBound(const Slice& internal_key, const char* memtable_key) const {
    auto it = std::partition_point(
        sorted_->begin(), sorted_->end(), [&](const Sorted& s) {
          return Compare(s.entry, internal_key, memtable_key) < 0;
        });
    return static_cast<size_t>(it - sorted_->begin());
  }

  const std::vector<Sorted>* sorted_;
  const MemTableRep::KeyComparator* compare_;
  size_t at_;
};

class SortedFlushRep : public MemTableRep {
 public:
  SortedFlushRep(std::unique_ptr<MemTableRep> inner,
                 const MemTableRep::KeyComparator& compare,
                 Allocator* allocator)
      : MemTableRep(allocator), inner_(std::move(inner)), compare_(compare) {}

  KeyHandle Allocate(const size_t len, char** buf) override {
    return inner_->Allocate(len, buf);
  }

  // Inserts come from one writer at a time (concurrent inserts are not supported, see the
  // factory), and never after MarkReadOnly.
  void Insert(KeyHandle handle) override {
    inner_->Insert(handle);
    entries_.push_back(static_cast<const char*>(handle));
  }

  bool InsertKey(KeyHandle handle) override {
    if (!inner_->InsertKey(handle)) return false;
    entries_.push_back(static_cast<const char*>(handle));
    return true;
  }

  bool Contains(const char* key) const override {
    return inner_->Contains(key);
  }

  void MarkReadOnly() override {
    inner_->MarkReadOnly();
    read_only_.store(true, std::memory_order_release);
  }

  void MarkFlushed() override { inner_->MarkFlushed(); }

  void Get(const LookupKey& k, void* callback_args,
           bool (*callback_func)(void* arg, const char* entry)) override {
    inner_->Get(k, callback_args, callback_func);
  }

  uint64_t ApproximateNumEntries(const Slice& start_ikey,
                                 const Slice& end_ikey) override {
    return inner_->ApproximateNumEntries(start_ikey, end_ikey);
  }

  size_t ApproximateMemoryUsage() override {
    return inner_->ApproximateMemoryUsage() +
           entries_.capacity() * sizeof(const char*) +
           sorted_.capacity() * sizeof(Sorted);
  }

  MemTableRep::Iterator* GetIterator(Arena* arena) override {
    if (!read_only_.load(std::memory_order_acquire)) {
      return inner_->GetIterator(arena);
    }
    std::call_once(sorted_once_, [this] { Sort(); });
    if (arena == nullptr) return new SortedIterator(&sorted_, &compare_);
    Allocator* allocator = arena;
    void* mem = allocator->AllocateAligned(sizeof(SortedIterator));
    return new (mem) SortedIterator(&sorted_, &compare_);
  }

  MemTableRep::Iterator* GetDynamicPrefixIterator(Arena* arena) override {
    return inner_->GetDynamicPrefixIterator(arena);
  }

  bool IsMergeOperatorSupported() const override {
    return inner_->IsMergeOperatorSupported();
  }

  bool IsSnapshotSupported() const override {
    return inner_->IsSnapshotSupported();
  }

 private:
  void Sort() {
    sorted_.reserve(entries_.size());
    for (const char* entry : entries_) {
      sorted_.push_back(SortedEntry(entry));
    }
    std::vector<const char*>().swap(entries_);
    std::sort(sorted_.begin(), sorted_.end(),
              [this](const Sorted& a, const Sorted& b) {
                if (a.high != b.high) return a.high < b.high;
                if (a.low != b.low) return a.low < b.low;
                return compare_(a.entry, b.entry) < 0;
              });
  }

  std::unique_ptr<MemTableRep> inner_;
  const MemTableRep::KeyComparator& compare_;
  std::vector<const char*> entries_;
  std::atomic<bool> read_only_{false};
  std::once_flag sorted_once_;
  std::vector<Sorted> sorted_;
};

class SortedFlushFactory : public MemTableRepFactory {
 public:
  explicit SortedFlushFactory(std::shared_ptr<MemTableRepFactory> inner)
      : inner_(std::move(inner)) {}

  using MemTableRepFactory::CreateMemTableRep;
  MemTableRep* CreateMemTableRep(const MemTableRep::KeyComparator& compare,
                                 Allocator* allocator,
                                 const rocksdb::SliceTransform* transform,
                                 rocksdb::Logger* logger) override {
    std::unique_ptr<MemTableRep> inner(
        inner_->CreateMemTableRep(compare, allocator, transform, logger));
    return new SortedFlushRep(std::move(inner), compare, allocator);
  }

  static const char* kClassName() { return "KeyedStateSortedFlush"; }
  const char* Name() const override { return kClassName(); }

  bool IsInsertConcurrentlySupported() const override { return false; }
  bool CanHandleDuplicatedKey() const override {
    return inner_->CanHandleDuplicatedKey();
  }

 private:
  std::shared_ptr<MemTableRepFactory> inner_;
};

}  // namespace
}  // namespace keyedstate

// Wraps the memtable factory set on `options` (keyedstate sets RocksDB's HashSkipList first)
// in the sorted-flush rep above. Returns 0, or -1 when no factory is set.
extern "C" int keyedstate_sorted_flush_memtable(rocksdb_options_t* options) {
  auto& factory = options->rep.memtable_factory;
  if (!factory) return -1;
  factory = std::make_shared<keyedstate::SortedFlushFactory>(factory);
  return 0;
}
