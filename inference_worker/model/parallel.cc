#include "inference_worker/model/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "inference_worker/gguf/ggml_types.h"

namespace ossgate::model {

namespace {

// The divisors of n, for the errors that suggest a world size.
std::string Divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i) {
    if (n % i == 0) d.push_back(i);
  }
  return absl::StrJoin(d, ", ");
}

int64_t BlockElems(gguf::GgmlType type) {
  const auto traits = gguf::GetTypeTraits(static_cast<uint32_t>(type));
  return traits ? traits->block_elems : 1;
}

std::vector<float> SliceFloats(const std::vector<float>& v, int64_t begin, int64_t n) {
  if (v.empty()) return {};
  return std::vector<float>(v.begin() + begin, v.begin() + begin + n);
}

// Per expert e in [e0, e0 + ne): elements [e * stride + begin, + n) of v.
std::vector<float> SliceExpertFloats(const std::vector<float>& v, int64_t e0, int64_t ne, int64_t stride,
                                     int64_t begin, int64_t n) {
  std::vector<float> out;
  out.reserve(ne * n);
  for (int64_t e = e0; e < e0 + ne; ++e) {
    out.insert(out.end(), v.begin() + e * stride + begin, v.begin() + e * stride + begin + n);
  }
  return out;
}

// Matrices [e0, e0 + ne) of m, rows [r0, r0 + nr) of each: a view when the
// rows are whole, else a copy into `storage`.
Matrix ExpertRows(const Matrix& m, int64_t e0, int64_t ne, int64_t r0, int64_t nr,
                  std::vector<std::vector<uint8_t>>& storage) {
  Matrix v = m;
  v.n_mats = ne;
  v.rows = nr;
  v.first_row = m.first_row + r0;
  if (nr == m.rows) {
    v.data = m.Row(e0, 0);
    return v;
  }
  std::vector<uint8_t>& buf = storage.emplace_back(static_cast<size_t>(ne * nr) * m.row_bytes);
  for (int64_t e = 0; e < ne; ++e) {
    std::memcpy(buf.data() + e * nr * m.row_bytes, m.Row(e0 + e, r0), nr * m.row_bytes);
  }
  v.data = buf.data();
  return v;
}

// Matrices [e0, e0 + ne) of m, columns [c0, c0 + nc) of every row: a view
// when the rows are whole (matrices are contiguous), else copied into
// `storage`. The range must fall on the type's blocks.
absl::StatusOr<Matrix> Columns(const Matrix& m, int64_t e0, int64_t ne, int64_t c0, int64_t nc,
                               std::vector<std::vector<uint8_t>>& storage) {
  if (c0 == 0 && nc == m.cols) return ExpertRows(m, e0, ne, 0, m.rows, storage);
  const int64_t be = BlockElems(m.type);
  if (c0 % be != 0 || nc % be != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor parallelism: columns [", c0, ", ", c0 + nc, ") of ", m.name, " (", gguf::GgmlTypeName(
            static_cast<uint32_t>(m.type)), ") do not fall on its blocks of ", be,
        " elements; use fewer ranks (each rank's part must be a multiple of ", be, " columns)"));
  }
  Matrix v = m;
  v.n_mats = ne;
  v.cols = nc;
  v.row_bytes = static_cast<uint64_t>(gguf::RowBytes(m.type, nc));
  const uint64_t skip = static_cast<uint64_t>(gguf::RowBytes(m.type, c0));
  std::vector<uint8_t>& buf = storage.emplace_back(static_cast<size_t>(ne * m.rows) * v.row_bytes);
  for (int64_t e = 0; e < ne; ++e) {
    for (int64_t r = 0; r < m.rows; ++r) {
      std::memcpy(buf.data() + (e * m.rows + r) * v.row_bytes, m.Row(e0 + e, r) + skip, v.row_bytes);
    }
  }
  v.data = buf.data();
  return v;
}

// A rank's attention of either kind of layer (LayerWeights,
// DenseLayerWeights): the norm, its heads' q/k/v rows and biases, the output
// projection's columns those heads feed.
template <typename L>
absl::Status SliceAttention(const L& in, const ModelConfig& c, const Shard& s,
                            std::vector<std::vector<uint8_t>>& storage, L& out) {
  const int64_t hd = c.head_dim, q0 = s.q_head_begin * hd, nq = s.n_q_heads * hd;
  const int64_t kv0 = s.kv_head_begin * hd, nkv = s.n_kv_heads * hd;
  out.attn_norm = in.attn_norm;
  out.wq = in.wq.RowRange(q0, nq);
  out.wk = in.wk.RowRange(kv0, nkv);
  out.wv = in.wv.RowRange(kv0, nkv);
  out.bq = SliceFloats(in.bq, q0, nq);
  out.bk = SliceFloats(in.bk, kv0, nkv);
  out.bv = SliceFloats(in.bv, kv0, nkv);
  auto wo = Columns(in.wo, 0, 1, q0, nq, storage);
  if (!wo.ok()) return wo.status();
  out.wo = *wo;
  return absl::OkStatus();
}

}  // namespace

std::string ParallelLayout::ToString() const {
  return absl::StrCat(world, world == 1 ? " rank" : " ranks", ", ", ExpertGroups(), " expert group",
                      ExpertGroups() == 1 ? "" : "s");
}

absl::StatusOr<Shard> PlanShard(const ModelConfig& c, const ParallelLayout& layout, int rank, int64_t ff_unit) {
  const int W = layout.world;
  if (W < 1) return absl::InvalidArgumentError(absl::StrCat("parallel layout: world size ", W, " must be at least 1"));
  if (rank < 0 || rank >= W) {
    return absl::InvalidArgumentError(absl::StrCat("parallel layout: rank ", rank, " outside [0, ", W, ")"));
  }
  if (c.n_kv_heads % W != 0) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism over ", W, " ranks: the model's ", c.n_kv_heads,
                                                   " KV heads do not split evenly; use ", Divisors(c.n_kv_heads),
                                                   " ranks"));
  }
  const bool moe = c.family == Family::kGptOss;
  const int groups = moe ? layout.ExpertGroups() : 1;
  if (moe) {
    if (groups < 1 || W % groups != 0) {
      return absl::InvalidArgumentError(absl::StrCat("expert parallelism: ", groups, " expert groups do not divide ",
                                                     W, " ranks; use one of ", Divisors(W)));
    }
    if (c.n_experts % groups != 0) {
      return absl::InvalidArgumentError(absl::StrCat("expert parallelism: the model's ", c.n_experts,
                                                     " experts do not split into ", groups, " groups; use one of ",
                                                     Divisors(std::min(c.n_experts, W))));
    }
  } else if (layout.expert_parallel > 1) {
    return absl::InvalidArgumentError(absl::StrCat("expert parallelism: ", FamilyName(c.family),
                                                   " has no experts; leave expert_parallel unset"));
  }
  const int group_size = W / groups;
  const int64_t unit = std::max<int64_t>(ff_unit, 1);
  const int64_t units = c.d_ff / unit;
  if (units < group_size) {
    return absl::InvalidArgumentError(absl::StrCat("tensor parallelism: the intermediate dimension (", c.d_ff,
                                                   ", blocks of ", unit, ") has fewer blocks than the ", group_size,
                                                   " ranks that would share it; use fewer ranks"));
  }
  Shard s;
  s.rank = rank;
  s.world = W;
  s.n_kv_heads = c.n_kv_heads / W;
  s.kv_head_begin = rank * s.n_kv_heads;
  const int group = c.n_heads / c.n_kv_heads;
  s.n_q_heads = s.n_kv_heads * group;
  s.q_head_begin = s.kv_head_begin * group;
  if (moe) {
    s.n_experts = c.n_experts / groups;
    s.expert_begin = (rank / group_size) * s.n_experts;
  }
  const int slice = rank % group_size;
  const int64_t u0 = slice * units / group_size, u1 = (slice + 1) * units / group_size;
  s.ff_begin = static_cast<int>(u0 * unit);
  s.ff_size = static_cast<int>((u1 - u0) * unit);
  s.attn_bias = rank == 0;
  s.ffn_bias = slice == 0;
  return s;
}

ModelConfig ShardConfig(const ModelConfig& config, const Shard& shard) {
  ModelConfig c = config;
  c.n_heads = shard.n_q_heads;
  c.n_kv_heads = shard.n_kv_heads;
  c.d_ff = shard.ff_size;
  return c;
}

int64_t FfSplitUnit(const Weights& full) {
  if (!full.layers.empty()) return BlockElems(full.layers[0].down_exps.type);
  if (!full.dense_layers.empty()) return BlockElems(full.dense_layers[0].down.type);
  return 1;
}

absl::StatusOr<ShardWeights> SliceWeights(const Weights& full, const ModelConfig& c, const Shard& s) {
  ShardWeights out;
  Weights& w = out.weights;
  auto& storage = out.storage;
  w.token_embd = full.token_embd;
  w.output_norm = full.output_norm;
  w.output = full.output;
  const int64_t f0 = s.ff_begin, nf = s.ff_size;
  for (const LayerWeights& L : full.layers) {
    LayerWeights& o = w.layers.emplace_back();
    if (absl::Status st = SliceAttention(L, c, s, storage, o); !st.ok()) return st;
    if (s.attn_bias) o.bo = L.bo;
    o.sinks = SliceFloats(L.sinks, s.q_head_begin, s.n_q_heads);
    o.post_attn_norm = L.post_attn_norm;
    o.router = L.router;
    o.router_b = L.router_b;
    const int64_t e0 = s.expert_begin, ne = s.n_experts, F = L.gate_exps.rows, D = L.down_exps.rows;
    o.gate_exps = ExpertRows(L.gate_exps, e0, ne, f0, nf, storage);
    o.up_exps = ExpertRows(L.up_exps, e0, ne, f0, nf, storage);
    o.gate_b = SliceExpertFloats(L.gate_b, e0, ne, F, f0, nf);
    o.up_b = SliceExpertFloats(L.up_b, e0, ne, F, f0, nf);
    auto down = Columns(L.down_exps, e0, ne, f0, nf, storage);
    if (!down.ok()) return down.status();
    o.down_exps = *down;
    o.down_b = s.ffn_bias ? SliceExpertFloats(L.down_b, e0, ne, D, 0, D) : std::vector<float>(ne * D, 0.0f);
  }
  for (const DenseLayerWeights& L : full.dense_layers) {
    DenseLayerWeights& o = w.dense_layers.emplace_back();
    if (absl::Status st = SliceAttention(L, c, s, storage, o); !st.ok()) return st;
    o.ffn_norm = L.ffn_norm;
    o.gate = L.gate.RowRange(f0, nf);
    o.up = L.up.RowRange(f0, nf);
    auto down = Columns(L.down, 0, 1, f0, nf, storage);
    if (!down.ok()) return down.status();
    o.down = *down;
  }
  return out;
}

// ------------------------------------------------------- in-process group --

struct InProcessGroup::State {
  class Member final : public Communicator {
   public:
    Member(State* s, int r) : s_(s), r_(r) {}
    int rank() const override { return r_; }
    int size() const override { return s_->world; }
    void AllReduceSum(std::span<float> data) override { s_->AllReduce(r_, data); }

   private:
    State* s_;
    int r_;
  };

  explicit State(int w) : world(w), bufs(w), sizes(w) {
    for (int r = 0; r < w; ++r) members.push_back(std::make_unique<Member>(this, r));
  }

  void Barrier() {
    std::unique_lock<std::mutex> lock(mu);
    const uint64_t gen = generation;
    if (++arrived == world) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != gen; });
    }
  }

  // Deposit, each rank reduces its 1/world of the elements in rank order
  // into `result`, each copies the whole result; the last barrier keeps the
  // next call from resizing or overwriting `result` before every rank has it.
  void AllReduce(int r, std::span<float> data) {
    if (world == 1) return;
    bufs[r] = data.data();
    sizes[r] = data.size();
    if (r == 0) result.resize(data.size());
    Barrier();
    const size_t n = sizes[0];
    for (int k = 1; k < world; ++k) {
      if (sizes[k] != n) {
        std::fprintf(stderr, "InProcessGroup: rank %d reduces %zu floats, rank 0 %zu\n", k, sizes[k], n);
        std::abort();
      }
    }
    const size_t b = n * r / world, e = n * (r + 1) / world;
    for (size_t i = b; i < e; ++i) {
      float v = bufs[0][i];
      for (int k = 1; k < world; ++k) v += bufs[k][i];
      result[i] = v;
    }
    Barrier();
    std::copy(result.begin(), result.end(), data.begin());
    Barrier();
  }

  const int world;
  std::mutex mu;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<float*> bufs;
  std::vector<size_t> sizes;
  std::vector<float> result;
  std::vector<std::unique_ptr<Member>> members;
};

InProcessGroup::InProcessGroup(int world) : state_(std::make_unique<State>(std::max(world, 1))) {}
InProcessGroup::~InProcessGroup() = default;
int InProcessGroup::world() const { return state_->world; }
Communicator& InProcessGroup::rank(int r) { return *state_->members.at(r); }

}  // namespace ossgate::model
