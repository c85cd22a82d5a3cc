// keyedstate's key-hash memtable with a sorted flush (see src/memtable.rs for the Rust side).
//
// RocksDB's hash memtables (HashLinkList, keyedstate's, and HashSkipList) find a key's entries
// through a hash of the key, which makes record access fast, but their total-order iterator
// (what a flush reads) builds a new skip list of every entry, one insert at a time: for a
// memtable of 50,000 entries that is most of an incremental checkpoint's time. This rep
// delegates everything to the hash rep, and also notes each inserted entry in an array. Once
// the memtable is immutable (the only state a flush reads), its total-order iterator sorts
// that array instead: by the first 16 bytes of each user key, then, for equal prefixes, by the
// memtable's own comparator. A mutable memtable's total-order iterator is the hash rep's own.
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

  // A handle is the inner rep's own (a skip list's is its entry, a hash linked list's the
  // node that holds the entry), so the entry is taken from the buffer Allocate hands out.
  KeyHandle Allocate(const size_t len, char** buf) override {
    KeyHandle handle = inner_->Allocate(len, buf);
    allocated_ = {handle, *buf};
    return handle;
  }

  // Inserts come from one writer at a time (concurrent inserts are not supported, see the
  // factory), each right after the Allocate of its entry, and never after MarkReadOnly.
  void Insert(KeyHandle handle) override {
    inner_->Insert(handle);
    Note(handle);
  }

  bool InsertKey(KeyHandle handle) override {
    if (!inner_->InsertKey(handle)) return false;
    Note(handle);
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
    if (!read_only_.load(std::memory_order_acquire) || unsorted_) {
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
  // Notes the entry of `handle`; an insert of a handle other than the last allocated one
  // (which RocksDB's single-writer insert path never makes) leaves the flush to the inner
  // rep's own total-order iterator, slower but right.
  void Note(KeyHandle handle) {
    if (handle != allocated_.handle) {
      unsorted_ = true;
      return;
    }
    entries_.push_back(allocated_.entry);
  }

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
  struct Allocated {
    KeyHandle handle = nullptr;
    const char* entry = nullptr;
  };
  Allocated allocated_;
  bool unsorted_ = false;
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

// Sets keyedstate's key-hash memtable on `options`: RocksDB's HashLinkList with `buckets`
// buckets, in the sorted-flush rep above. The factory's logging is off: by default a
// HashLinkList logs a warning string for every bucket that reaches 4,096 entries and, in
// every total-order iterator of a mutable memtable (a scan), adds each bucket's entry count
// to a histogram, a call per bucket that made a scan of 500,000 buckets cost tens of
// milliseconds. Buckets become skip lists past 256 entries (RocksDB's default).
extern "C" void keyedstate_key_hash_memtable(rocksdb_options_t* options,
                                             size_t buckets) {
  using rocksdb::MemTableRepFactory;
  std::shared_ptr<MemTableRepFactory> hash(
      rocksdb::NewHashLinkListRepFactory(buckets, /*huge_page_tlb_size=*/0,
                                         /*bucket_entries_logging_threshold=*/0,
                                         /*if_log_bucket_dist_when_flash=*/false,
                                         /*threshold_use_skiplist=*/256));
  options->rep.memtable_factory =
      std::make_shared<keyedstate::SortedFlushFactory>(std::move(hash));
}
