#include "inference_worker/model/kv_cache.h"

#include <cassert>

#include "absl/strings/str_cat.h"

namespace ossgate::model {

KvBlockManager::KvBlockManager(const KvCacheOptions& o, int window)
    : block_size_(o.block_size),
      num_full_blocks_(o.num_full_blocks),
      max_sequences_(o.max_sequences),
      ring_blocks_(window > 0 ? (window + o.block_size - 1) / o.block_size + 1 : 0) {
  assert(block_size_ > 0 && num_full_blocks_ >= 0 && max_sequences_ > 0);
  // Free lists are stacks; push in reverse so the lowest ids go out first.
  for (int b = num_full_blocks_ - 1; b >= 0; --b) free_full_.push_back(b);
  for (int b = ring_blocks_ * max_sequences_ - 1; b >= 0; --b) free_ring_.push_back(b);
}

absl::Status KvBlockManager::AddSequence(SeqId id) {
  if (seqs_.count(id)) return absl::AlreadyExistsError(absl::StrCat("sequence ", id, " already exists"));
  if (static_cast<int>(seqs_.size()) >= max_sequences_) {
    return absl::ResourceExhaustedError(absl::StrCat("all ", max_sequences_, " sequence slots are in use"));
  }
  Seq s;
  for (int i = 0; i < ring_blocks_; ++i) {
    s.ring.push_back(free_ring_.back());
    free_ring_.pop_back();
  }
  seqs_.emplace(id, std::move(s));
  return absl::OkStatus();
}

absl::Status KvBlockManager::MirrorFrom(const KvBlockManager& other) {
  if (other.block_size_ != block_size_ || other.num_full_blocks_ != num_full_blocks_ ||
      other.max_sequences_ != max_sequences_ || other.ring_blocks_ != ring_blocks_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "KV block managers differ: block size ", block_size_, " / ", other.block_size_, ", full blocks ",
        num_full_blocks_, " / ", other.num_full_blocks_, ", sequences ", max_sequences_, " / ", other.max_sequences_,
        ", ring blocks ", ring_blocks_, " / ", other.ring_blocks_));
  }
  free_full_ = other.free_full_;
  free_ring_ = other.free_ring_;
  seqs_ = other.seqs_;
  return absl::OkStatus();
}

void KvBlockManager::RemoveSequence(SeqId id) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return;
  for (int32_t b : it->second.full) free_full_.push_back(b);
  for (int32_t b : it->second.ring) free_ring_.push_back(b);
  seqs_.erase(it);
}

absl::Status KvBlockManager::Reserve(SeqId id, int n) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return absl::NotFoundError(absl::StrCat("unknown sequence ", id));
  Seq& s = it->second;
  const int need = FullBlocksFor(s.length + n) - static_cast<int>(s.full.size());
  if (need <= 0) return absl::OkStatus();
  if (need > static_cast<int>(free_full_.size())) {
    return absl::ResourceExhaustedError(absl::StrCat("KV cache full: sequence ", id, " needs ", need,
                                                     " more blocks, ", free_full_.size(), " free"));
  }
  for (int i = 0; i < need; ++i) {
    s.full.push_back(free_full_.back());
    free_full_.pop_back();
  }
  return absl::OkStatus();
}

void KvBlockManager::Commit(SeqId id, int n) {
  Seq& s = seqs_.at(id);
  assert(FullBlocksFor(s.length + n) <= static_cast<int>(s.full.size()));
  s.length += n;
}

int KvBlockManager::Length(SeqId id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? 0 : it->second.length;
}

KvSlot KvBlockManager::FullSlot(SeqId id, int pos) const {
  const Seq& s = seqs_.at(id);
  return {s.full[pos / block_size_], pos % block_size_};
}

KvSlot KvBlockManager::WindowSlot(SeqId id, int pos) const {
  const Seq& s = seqs_.at(id);
  return {s.ring[(pos / block_size_) % ring_blocks_], pos % block_size_};
}

}  // namespace ossgate::model
