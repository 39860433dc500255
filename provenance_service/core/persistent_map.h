// An ordered map with O(1) copies: an immutable AVL tree whose nodes are
// shared between copies. Put() copies only the O(log n) nodes on the path to
// the key (and allocates the one new entry), so a copy taken before a Put
// keeps seeing the old contents while the two share everything else.
//
// The registry uses it so that the ledger can stage a batch's changes on a
// copy of the published registry without copying every entry (a std::map
// copy made each registry change cost time proportional to the registry).
//
// The read interface follows std::map (find, lower_bound, upper_bound,
// begin/end, count, size) with const iterators only; entries are replaced
// with Put, never modified in place.
//
// Thread-safety: a PersistentMap object is a value like std::map (concurrent
// reads are safe, a Put needs exclusive access to that object). Distinct
// objects that share nodes may be used from different threads without
// locking: nodes are immutable and their reference counts atomic.
// Iterators stay valid while the map they came from is neither destroyed nor
// modified.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_PERSISTENT_MAP_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_PERSISTENT_MAP_H_

#include <algorithm>
#include <cstddef>
#include <functional>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/container/inlined_vector.h"

namespace ossgate::provenance {

template <typename K, typename V, typename Less = std::less<K>>
class PersistentMap {
  struct Node;
  using NodePtr = std::shared_ptr<const Node>;

 public:
  using key_type = K;
  using mapped_type = V;
  using value_type = std::pair<const K, V>;

  class const_iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = PersistentMap::value_type;
    using difference_type = std::ptrdiff_t;
    using pointer = const value_type*;
    using reference = const value_type&;

    const_iterator() = default;
    reference operator*() const { return *path_.back()->entry; }
    pointer operator->() const { return path_.back()->entry.get(); }
    const_iterator& operator++() {
      const Node* n = path_.back();
      path_.pop_back();
      for (const Node* c = n->right.get(); c != nullptr; c = c->left.get()) path_.push_back(c);
      return *this;
    }
    const_iterator operator++(int) {
      const_iterator old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const const_iterator& a, const const_iterator& b) {
      if (a.path_.empty() || b.path_.empty()) return a.path_.empty() == b.path_.empty();
      return a.path_.back() == b.path_.back();
    }

   private:
    friend class PersistentMap;
    // The current node last, below it the ancestors still to be visited
    // (those whose left subtree holds the current node).
    absl::InlinedVector<const Node*, 32> path_;
  };
  using iterator = const_iterator;

  PersistentMap() = default;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  const_iterator begin() const {
    const_iterator it;
    for (const Node* n = root_.get(); n != nullptr; n = n->left.get()) it.path_.push_back(n);
    return it;
  }
  const_iterator end() const { return const_iterator(); }

  // First entry whose key is not less than `key`.
  const_iterator lower_bound(const K& key) const {
    const_iterator it;
    for (const Node* n = root_.get(); n != nullptr;) {
      if (less_(n->entry->first, key)) {
        n = n->right.get();
      } else {
        it.path_.push_back(n);
        n = n->left.get();
      }
    }
    return it;
  }
  // First entry whose key is greater than `key`.
  const_iterator upper_bound(const K& key) const {
    const_iterator it;
    for (const Node* n = root_.get(); n != nullptr;) {
      if (less_(key, n->entry->first)) {
        it.path_.push_back(n);
        n = n->left.get();
      } else {
        n = n->right.get();
      }
    }
    return it;
  }
  const_iterator find(const K& key) const {
    const_iterator it = lower_bound(key);
    if (it != end() && less_(key, it->first)) return end();
    return it;
  }
  size_t count(const K& key) const { return find(key) != end() ? 1 : 0; }

  // Inserts the entry, or replaces the value of an existing key. Copies the
  // nodes on the path to the key; other copies of the map are unaffected.
  void Put(K key, V value) {
    auto entry = std::make_shared<const value_type>(std::move(key), std::move(value));
    bool inserted = false;
    root_ = Insert(root_, entry, &inserted);
    if (inserted) ++size_;
  }

  // Height of the tree (0 when empty); for tests of the balance.
  int height() const { return Height(root_); }

 private:
  struct Node {
    std::shared_ptr<const value_type> entry;
    NodePtr left, right;
    int height = 1;
  };

  static int Height(const NodePtr& n) { return n ? n->height : 0; }

  static NodePtr Make(NodePtr left, std::shared_ptr<const value_type> entry, NodePtr right) {
    auto n = std::make_shared<Node>();
    n->height = 1 + std::max(Height(left), Height(right));
    n->entry = std::move(entry);
    n->left = std::move(left);
    n->right = std::move(right);
    return n;
  }

  // A node for (left, entry, right) whose subtrees' heights differ by at
  // most 2 (one Insert below a balanced node), rebalanced by the AVL
  // rotations. Only new nodes are built; the subtrees are shared.
  static NodePtr Balance(NodePtr left, std::shared_ptr<const value_type> entry, NodePtr right) {
    const int hl = Height(left), hr = Height(right);
    if (hl > hr + 1) {
      if (Height(left->left) >= Height(left->right)) {
        return Make(left->left, left->entry, Make(left->right, std::move(entry), std::move(right)));
      }
      const Node& lr = *left->right;
      return Make(Make(left->left, left->entry, lr.left), lr.entry, Make(lr.right, std::move(entry), std::move(right)));
    }
    if (hr > hl + 1) {
      if (Height(right->right) >= Height(right->left)) {
        return Make(Make(std::move(left), std::move(entry), right->left), right->entry, right->right);
      }
      const Node& rl = *right->left;
      return Make(Make(std::move(left), std::move(entry), rl.left), rl.entry, Make(rl.right, right->entry, right->right));
    }
    return Make(std::move(left), std::move(entry), std::move(right));
  }

  NodePtr Insert(const NodePtr& n, const std::shared_ptr<const value_type>& entry, bool* inserted) const {
    if (!n) {
      *inserted = true;
      return Make(nullptr, entry, nullptr);
    }
    if (less_(entry->first, n->entry->first)) return Balance(Insert(n->left, entry, inserted), n->entry, n->right);
    if (less_(n->entry->first, entry->first)) return Balance(n->left, n->entry, Insert(n->right, entry, inserted));
    return Make(n->left, entry, n->right);
  }

  NodePtr root_;
  size_t size_ = 0;
  Less less_;
};

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_PERSISTENT_MAP_H_
