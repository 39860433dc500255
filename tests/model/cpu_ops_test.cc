// The CPU forward-pass operations (cpu_ops.h) and the YaRN tables
// (ComputeRope) against plain float64 implementations written here from the
// formulas of docs/gpt-oss-spec.md §5, on seeded random inputs of several
// shapes, odd sizes included. Nothing here calls the code under test to
// produce an expected value.
#include "inference_worker/model/cpu_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/model_config.h"
#include "inference_worker/model/thread_pool.h"
#include "inference_worker/model/weights.h"

namespace ossgate::model::cpu {
namespace {

constexpr double kU = 1.0 / 16777216.0;  // float unit roundoff, 2^-24

std::vector<float> RandomVector(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(rng);
  return v;
}

// ---------------------------------------------------------------------------
// Dot

// Error bound for a float sum of n products split over 16 lanes, a tail of
// up to 15 terms and a 4-level pairwise reduction: each term passes through
// at most n/16 + 15 + 6 roundings (Higham's gamma_k), times sum |a_i b_i|.
double DotBound(const float* a, const float* b, int64_t n) {
  double abs_sum = 0;
  for (int64_t i = 0; i < n; ++i) abs_sum += std::fabs(static_cast<double>(a[i]) * b[i]);
  const double k = static_cast<double>(n) / 16.0 + 21.0;
  return k * kU / (1.0 - k * kU) * abs_sum;
}

double RefDot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(DotTest, MatchesFloat64WithinRoundingBoundForLengths1To100And4096) {
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 100; ++n) lengths.push_back(n);
  lengths.push_back(4095);
  lengths.push_back(4096);
  lengths.push_back(4097);
  for (int64_t n : lengths) {
    const std::vector<float> a = RandomVector(n, 1000 + n);
    const std::vector<float> b = RandomVector(n, 2000 + n, -3.0f, 3.0f);
    const double want = RefDot(a.data(), b.data(), n);
    const float got = Dot(a.data(), b.data(), n);
    EXPECT_LE(std::fabs(got - want), DotBound(a.data(), b.data(), n) + 1e-30) << "n=" << n;
  }
}

TEST(DotTest, ExactOnSmallIntegersInEveryLaneAndTheTail) {
  // Integers keep every partial sum exact, so any dropped or doubled element
  // (lane or tail) shows as a wrong integer.
  for (int64_t n : {1, 15, 16, 17, 31, 32, 33, 47, 100, 4096}) {
    std::vector<float> a(n), b(n);
    double want = 0;
    for (int64_t i = 0; i < n; ++i) {
      a[i] = static_cast<float>((i * 7) % 13 - 6);
      b[i] = static_cast<float>((i * 5) % 11 - 5);
      want += static_cast<double>(a[i]) * b[i];
    }
    EXPECT_EQ(Dot(a.data(), b.data(), n), static_cast<float>(want)) << "n=" << n;
  }
}

TEST(DotTest, EmptyIsZero) {
  const float a = 3.0f, b = 4.0f;
  EXPECT_EQ(Dot(&a, &b, 0), 0.0f);
}

// ---------------------------------------------------------------------------
// RmsNorm: out = x * rsqrt(mean(x^2) + eps) * w (spec §5.2.1).

TEST(RmsNormTest, MatchesFloat64ForSeveralSizesAndScales) {
  const float eps = 1e-5f;
  for (int64_t n : {1, 7, 64, 97, 2880, 4095}) {
    // At scale 1e-3 mean(x^2) ~ 3e-7 is far below eps, so eps placement
    // (inside the square root) dominates the result.
    for (float scale : {1e-3f, 1.0f, 100.0f}) {
      std::vector<float> x = RandomVector(n, 31 * n + 1);
      for (float& v : x) v *= scale;
      const std::vector<float> w = RandomVector(n, 17 * n + 5, 0.5f, 1.5f);
      double ss = 0;
      for (float v : x) ss += static_cast<double>(v) * v;
      const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + static_cast<double>(eps));
      std::vector<float> out(n, std::numeric_limits<float>::quiet_NaN());
      RmsNorm(x.data(), w.data(), eps, n, out.data());
      for (int64_t i = 0; i < n; ++i) {
        const double want = static_cast<double>(x[i]) * inv * w[i];
        EXPECT_NEAR(out[i], want, 8 * kU * std::fabs(want) + 1e-37) << "n=" << n << " scale=" << scale << " i=" << i;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// MatMul over every stored weight type. The matrix bytes come from
// gguf::QuantizeRow; the reference decodes them with the decoders below,
// written from spec §1-§2 (not gguf::DequantizeRow), and multiplies in float64.

double HalfToDouble(uint16_t h) {
  const int sign = (h >> 15) & 1;
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(static_cast<double>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  } else {
    v = std::ldexp(1.0 + mant / 1024.0, exp - 15);
  }
  return sign ? -v : v;
}

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// E2M1 code -> value (spec §2.1: 0, .5, 1, 1.5, 2, 3, 4, 6 and negatives).
double E2M1(int code) {
  static constexpr double kMag[8] = {0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0};
  return (code & 8) ? -kMag[code & 7] : kMag[code & 7];
}

std::vector<double> DecodeRow(gguf::GgmlType type, const uint8_t* p, int64_t n) {
  std::vector<double> out(static_cast<size_t>(n));
  switch (type) {
    case gguf::GgmlType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, p + 4 * i, 4);
        out[i] = f;
      }
      break;
    case gguf::GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = HalfToDouble(LoadU16(p + 2 * i));
      break;
    case gguf::GgmlType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint32_t bits = static_cast<uint32_t>(LoadU16(p + 2 * i)) << 16;
        float f;
        std::memcpy(&f, &bits, 4);
        out[i] = f;
      }
      break;
    case gguf::GgmlType::kQ8_0:
      // 34-byte blocks: fp16 d, then 32 int8 q; value = d * q.
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + 34 * b;
        const double d = HalfToDouble(LoadU16(blk));
        for (int j = 0; j < 32; ++j) out[32 * b + j] = d * static_cast<int8_t>(blk[2 + j]);
      }
      break;
    case gguf::GgmlType::kQ4_K:
    case gguf::GgmlType::kQ5_K:
    case gguf::GgmlType::kQ6_K:
    case gguf::GgmlType::kQ5_0:
    case gguf::GgmlType::kQ5_1: {
      // The k-quant and 5-bit element decoding has its own float64
      // reference (tests/gguf/kquants_test.cc, ggml_types_test.cc); here the
      // matmul around it is under test, so the library's decoding (exact in
      // float for Q6_K and Q5_0, one rounding for Q4_K, Q5_K, Q5_1) stands in.
      std::vector<float> f(static_cast<size_t>(n));
      gguf::DequantizeRow(type, p, f.data(), n);
      for (int64_t i = 0; i < n; ++i) out[i] = f[i];
      break;
    }
    case gguf::GgmlType::kMXFP4:
      // 17-byte blocks: E8M0 e, then qs[16]; low nibble of qs[j] is element
      // j, high nibble element j + 16; value = E2M1(code) * 2^(e - 127).
      for (int64_t b = 0; b < n / 32; ++b) {
        const uint8_t* blk = p + 17 * b;
        const int e = blk[0];
        for (int j = 0; j < 16; ++j) {
          out[32 * b + j] = std::ldexp(E2M1(blk[1 + j] & 0x0F), e - 127);
          out[32 * b + j + 16] = std::ldexp(E2M1(blk[1 + j] >> 4), e - 127);
        }
      }
      break;
  }
  return out;
}

int64_t ExpectedRowBytes(gguf::GgmlType type, int64_t cols) {
  switch (type) {
    case gguf::GgmlType::kF32: return 4 * cols;
    case gguf::GgmlType::kF16:
    case gguf::GgmlType::kBF16: return 2 * cols;
    case gguf::GgmlType::kQ8_0: return cols / 32 * 34;
    case gguf::GgmlType::kMXFP4: return cols / 32 * 17;
    case gguf::GgmlType::kQ4_K: return cols / 256 * 144;
    case gguf::GgmlType::kQ6_K: return cols / 256 * 210;
    case gguf::GgmlType::kQ5_K: return cols / 256 * 176;
    case gguf::GgmlType::kQ5_0: return cols / 32 * 22;
    case gguf::GgmlType::kQ5_1: return cols / 32 * 24;
  }
  return 0;
}

const char* TypeName(gguf::GgmlType t) {
  switch (t) {
    case gguf::GgmlType::kF32: return "F32";
    case gguf::GgmlType::kF16: return "F16";
    case gguf::GgmlType::kBF16: return "BF16";
    case gguf::GgmlType::kQ8_0: return "Q8_0";
    case gguf::GgmlType::kMXFP4: return "MXFP4";
    case gguf::GgmlType::kQ4_K: return "Q4_K";
    case gguf::GgmlType::kQ6_K: return "Q6_K";
    case gguf::GgmlType::kQ5_K: return "Q5_K";
    case gguf::GgmlType::kQ5_0: return "Q5_0";
    case gguf::GgmlType::kQ5_1: return "Q5_1";
  }
  return "?";
}

struct MatMulCase {
  gguf::GgmlType type;
  int64_t cols;
  int64_t rows;
  int64_t n_mats;
};

// One stack of n_mats matrices with its bytes and float64 decoded values.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  std::vector<std::vector<double>> rows;  // [mat * rows + r][c]
  Matrix view;
};

TestMatrix MakeMatrix(const MatMulCase& c, uint64_t seed) {
  TestMatrix m;
  const int64_t row_bytes = ExpectedRowBytes(c.type, c.cols);
  m.bytes.resize(static_cast<size_t>(row_bytes * c.rows * c.n_mats));
  for (int64_t r = 0; r < c.rows * c.n_mats; ++r) {
    // Varying magnitudes across rows exercise the per-block scales.
    std::vector<float> src = RandomVector(c.cols, seed * 7919 + r, -1.0f, 1.0f);
    const float mag = std::ldexp(1.0f, static_cast<int>(r % 7) - 3);
    for (float& v : src) v *= mag;
    uint8_t* dst = m.bytes.data() + r * row_bytes;
    gguf::QuantizeRow(c.type, src.data(), dst, c.cols);
    m.rows.push_back(DecodeRow(c.type, dst, c.cols));
  }
  m.view.type = c.type;
  m.view.cols = c.cols;
  m.view.rows = c.rows;
  m.view.n_mats = c.n_mats;
  m.view.row_bytes = static_cast<uint64_t>(row_bytes);
  m.view.data = m.bytes.data();
  m.view.name = "test";
  return m;
}

TEST(MatMulTest, RowBytesAgreeWithTheSpecBlockSizes) {
  // Guards the reference decoder's layout assumptions against the library.
  for (gguf::GgmlType t : {gguf::GgmlType::kF32, gguf::GgmlType::kF16, gguf::GgmlType::kBF16, gguf::GgmlType::kQ8_0,
                           gguf::GgmlType::kMXFP4, gguf::GgmlType::kQ5_0, gguf::GgmlType::kQ5_1}) {
    EXPECT_EQ(gguf::RowBytes(t, 2880), ExpectedRowBytes(t, 2880)) << TypeName(t);
  }
  for (gguf::GgmlType t : {gguf::GgmlType::kQ4_K, gguf::GgmlType::kQ6_K, gguf::GgmlType::kQ5_K}) {  // 2880: not 256s
    EXPECT_EQ(gguf::RowBytes(t, 3072), ExpectedRowBytes(t, 3072)) << TypeName(t);
  }
  EXPECT_EQ(gguf::RowBytes(gguf::GgmlType::kMXFP4, 2880), 1530);  // spec §4
  EXPECT_EQ(gguf::RowBytes(gguf::GgmlType::kQ8_0, 4096), 4352);
}

TEST(MatMulTest, EveryWeightTypeMatchesFloat64OfTheDequantizedValues) {
  const std::vector<MatMulCase> cases = {
      {gguf::GgmlType::kF32, 37, 5, 1},    {gguf::GgmlType::kF32, 64, 33, 3},
      {gguf::GgmlType::kF16, 1, 3, 1},     {gguf::GgmlType::kF16, 129, 17, 2},
      {gguf::GgmlType::kBF16, 45, 9, 1},   {gguf::GgmlType::kBF16, 96, 31, 3},
      {gguf::GgmlType::kQ8_0, 32, 7, 1},   {gguf::GgmlType::kQ8_0, 160, 33, 3},
      {gguf::GgmlType::kMXFP4, 32, 3, 1},  {gguf::GgmlType::kMXFP4, 2880, 11, 2},
      {gguf::GgmlType::kMXFP4, 96, 65, 4},
      {gguf::GgmlType::kQ4_K, 256, 9, 1},  {gguf::GgmlType::kQ4_K, 768, 33, 3},
      {gguf::GgmlType::kQ6_K, 256, 5, 2},  {gguf::GgmlType::kQ6_K, 512, 31, 1},
      {gguf::GgmlType::kQ5_K, 256, 7, 2},  {gguf::GgmlType::kQ5_K, 768, 19, 1},
      {gguf::GgmlType::kQ5_0, 32, 5, 1},   {gguf::GgmlType::kQ5_0, 896, 21, 2},
      {gguf::GgmlType::kQ5_1, 64, 9, 3},   {gguf::GgmlType::kQ5_1, 896, 13, 1},
  };
  ThreadPool pool2(2);
  ThreadPool pool1(1);
  uint64_t seed = 1;
  for (const MatMulCase& c : cases) {
    const TestMatrix m = MakeMatrix(c, seed++);
    for (int64_t n_tokens : {1, 3, 17}) {
      for (bool with_bias : {false, true}) {
        const int64_t mat = c.n_mats - 1;  // the last matrix: catches a wrong mat offset
        const std::vector<float> x = RandomVector(n_tokens * c.cols, seed * 13 + n_tokens, -2.0f, 2.0f);
        const std::vector<float> bias = RandomVector(c.rows, seed * 17 + 3);
        const int64_t y_stride = c.rows + 3;  // padding must stay untouched
        constexpr float kSentinel = -12345.0f;
        std::vector<float> y(n_tokens * y_stride, kSentinel);
        MatMul(m.view, mat, x.data(), n_tokens, with_bias ? bias.data() : nullptr, y.data(), y_stride, pool2);
        for (int64_t t = 0; t < n_tokens; ++t) {
          for (int64_t r = 0; r < c.rows; ++r) {
            const std::vector<double>& w = m.rows[mat * c.rows + r];
            double want = with_bias ? bias[r] : 0.0, abs_sum = with_bias ? std::fabs(bias[r]) : 0.0;
            for (int64_t k = 0; k < c.cols; ++k) {
              want += w[k] * x[t * c.cols + k];
              abs_sum += std::fabs(w[k] * x[t * c.cols + k]);
            }
            // Dot's bound plus the rounding of the dequantized weight to
            // float (exact for every type here) and the bias add.
            const double kk = static_cast<double>(c.cols) / 16.0 + 23.0;
            EXPECT_NEAR(y[t * y_stride + r], want, kk * kU * abs_sum + 1e-30)
                << TypeName(c.type) << " cols=" << c.cols << " rows=" << c.rows << " mat=" << mat
                << " n_tokens=" << n_tokens << " bias=" << with_bias << " t=" << t << " r=" << r;
          }
          for (int64_t r = c.rows; r < y_stride; ++r) {
            EXPECT_EQ(y[t * y_stride + r], kSentinel) << "MatMul wrote past w.rows into the y_stride padding";
          }
        }
        // Thread count must not change a single bit (each row is one Dot).
        std::vector<float> y1(n_tokens * y_stride, kSentinel);
        MatMul(m.view, mat, x.data(), n_tokens, with_bias ? bias.data() : nullptr, y1.data(), y_stride, pool1);
        EXPECT_EQ(0, std::memcmp(y.data(), y1.data(), y.size() * sizeof(float))) << TypeName(c.type);
      }
    }
  }
}

TEST(MatMulTest, SelectsTheRequestedMatrixOfAStack) {
  // Three matrices with constant rows 1, 2, 3: the output names the matrix.
  const int64_t cols = 32, rows = 4;
  std::vector<float> bytes(static_cast<size_t>(cols * rows * 3));
  for (int64_t m = 0; m < 3; ++m) {
    std::fill(bytes.begin() + m * cols * rows, bytes.begin() + (m + 1) * cols * rows, static_cast<float>(m + 1));
  }
  Matrix w;
  w.type = gguf::GgmlType::kF32;
  w.cols = cols;
  w.rows = rows;
  w.n_mats = 3;
  w.row_bytes = cols * 4;
  w.data = reinterpret_cast<const uint8_t*>(bytes.data());
  const std::vector<float> x(cols, 1.0f);
  ThreadPool pool(2);
  for (int64_t m = 0; m < 3; ++m) {
    std::vector<float> y(rows);
    MatMul(w, m, x.data(), 1, nullptr, y.data(), rows, pool);
    for (float v : y) EXPECT_EQ(v, 32.0f * (m + 1)) << "mat " << m;
  }
}

// ---------------------------------------------------------------------------
// RoPE (spec §5.2.3): NeoX half split, x'[i] = m (x[i] c - x[i+h] s),
// x'[i+h] = m (x[i+h] c + x[i] s), theta_i = p * inv_freq[i].

// YaRN inv_freq per spec §5.2.4, float64, correction range not rounded.
std::vector<double> SpecInvFreq(int head_dim, double theta, double factor, double orig_ctx, double beta_fast,
                                double beta_slow) {
  const int half = head_dim / 2;
  std::vector<double> out(half);
  const double low = half * std::log(orig_ctx / (beta_fast * 2 * std::numbers::pi)) / std::log(theta);
  const double high = half * std::log(orig_ctx / (beta_slow * 2 * std::numbers::pi)) / std::log(theta);
  for (int i = 0; i < half; ++i) {
    const double f = std::pow(theta, 2.0 * i / head_dim);
    const double extrap = 1.0 / f, interp = 1.0 / (factor * f);
    double ramp = factor > 1.0 ? (i - low) / (high - low) : 0.0;
    ramp = std::min(1.0, std::max(0.0, ramp));
    out[i] = ramp * interp + (1.0 - ramp) * extrap;
  }
  return out;
}

TEST(ApplyRopeTest, MatchesFloat64NeoxRotationAtSmallAndHugePositions) {
  const double m = 0.1 * std::log(32.0) + 1.0;
  for (int head_dim : {2, 16, 64}) {
    RopeTables rope;
    rope.inv_freq = SpecInvFreq(head_dim, 150000.0, 32.0, 4096.0, 32.0, 1.0);
    rope.attention_factor = m;
    for (int n_heads : {1, 3, 8}) {
      for (int64_t pos : {0, 1, 127, 4095, 100000}) {
        const std::vector<float> in = RandomVector(n_heads * head_dim, 977 * pos + 31 * head_dim + n_heads, -2, 2);
        std::vector<float> v = in;
        ApplyRope(v.data(), n_heads, head_dim, pos, rope);
        const int half = head_dim / 2;
        for (int h = 0; h < n_heads; ++h) {
          const float* x = in.data() + h * head_dim;
          for (int i = 0; i < half; ++i) {
            const double angle = static_cast<double>(pos) * rope.inv_freq[i];
            const double c = std::cos(angle), s = std::sin(angle);
            const double a = x[i], b = x[i + half];
            const double want0 = m * (a * c - b * s);
            const double want1 = m * (b * c + a * s);
            const double tol = 8 * kU * m * (std::fabs(a) + std::fabs(b)) + 1e-30;
            EXPECT_NEAR(v[h * head_dim + i], want0, tol)
                << "head_dim=" << head_dim << " head=" << h << " pos=" << pos << " i=" << i;
            EXPECT_NEAR(v[h * head_dim + i + half], want1, tol)
                << "head_dim=" << head_dim << " head=" << h << " pos=" << pos << " i=" << i + half;
          }
        }
      }
    }
  }
}

TEST(ApplyRopeTest, PositionZeroOnlyScalesByTheAttentionFactor) {
  RopeTables rope;
  rope.inv_freq = SpecInvFreq(8, 150000.0, 32.0, 4096.0, 32.0, 1.0);
  rope.attention_factor = 1.5;
  std::vector<float> v = {1, -2, 3, -4, 5, -6, 7, -8};
  ApplyRope(v.data(), 1, 8, 0, rope);
  const std::vector<float> want = {1.5f, -3, 4.5f, -6, 7.5f, -9, 10.5f, -12};
  EXPECT_EQ(v, want);
}

TEST(ApplyRopeTest, PairsElementIWithIPlusHalfNotWithItsNeighbour) {
  // inv_freq = pi/2 at pos 1 is a quarter turn: x'[i] = -x[i+h], x'[i+h] = x[i].
  // GPT-J style (pairs 2i, 2i+1) would give a different permutation.
  RopeTables rope;
  rope.inv_freq = {std::numbers::pi / 2, std::numbers::pi / 2};
  rope.attention_factor = 1.0;
  std::vector<float> v = {1, 2, 3, 4};
  ApplyRope(v.data(), 1, 4, 1, rope);
  EXPECT_NEAR(v[0], -3, 1e-6);
  EXPECT_NEAR(v[1], -4, 1e-6);
  EXPECT_NEAR(v[2], 1, 1e-6);
  EXPECT_NEAR(v[3], 2, 1e-6);
}

// ---------------------------------------------------------------------------
// ComputeRope against the spec's reference values for the real 20b config.

ModelConfig Config20b() {
  ModelConfig c;
  c.head_dim = 64;
  c.rope_theta = 150000.0f;
  c.rope_scaling_factor = 32.0f;
  c.rope_original_context = 4096;
  c.yarn_beta_fast = 32.0f;
  c.yarn_beta_slow = 1.0f;
  return c;
}

TEST(ComputeRopeTest, SpecReferenceInvFreqValuesFor20b) {
  const RopeTables t = ComputeRope(Config20b());
  ASSERT_EQ(t.inv_freq.size(), 32u);
  // docs/gpt-oss-spec.md §5.2.4 (8 significant digits).
  struct Ref {
    int i;
    double value;
  };
  const Ref unrounded[] = {
      {0, 1.0},           {1, 0.68904431},    {2, 0.47478206},    {8, 0.050813275},   {9, 3.1705696e-02},
      {10, 1.9335001e-02}, {11, 1.1592049e-02}, {12, 6.7949595e-03}, {13, 3.8603593e-03}, {14, 2.0937924e-03},
      {15, 1.0526021e-03}, {16, 4.5648392e-04}, {17, 1.2931870e-04}, {18, 3.8308812e-05}, {31, 3.0235114e-07},
  };
  for (const Ref& r : unrounded) {
    EXPECT_NEAR(t.inv_freq[r.i], r.value, 1e-7 * r.value) << "i=" << r.i;
  }
  // ggml's floor/ceil-rounded correction range gives these instead; the
  // OpenAI reference (and ossgate) must not.
  const Ref rounded[] = {{9, 3.1620752e-02},  {10, 1.9450968e-02}, {11, 1.1792191e-02},
                         {12, 7.0157139e-03}, {13, 4.0695547e-03}, {14, 2.2772719e-03},
                         {15, 1.2061310e-03}, {16, 5.8094750e-04}, {17, 2.2794780e-04}};
  for (const Ref& r : rounded) {
    EXPECT_GT(std::fabs(t.inv_freq[r.i] - r.value), 1e-3 * r.value) << "i=" << r.i << " looks rounded (ggml)";
  }
}

TEST(ComputeRopeTest, EveryInvFreqMatchesTheSpecFormula) {
  // Below low = 8.0928 the original frequency 150000^(-2i/64), above
  // high = 17.3980 that divided by 32, a linear ramp between.
  const RopeTables t = ComputeRope(Config20b());
  const std::vector<double> want = SpecInvFreq(64, 150000.0, 32.0, 4096.0, 32.0, 1.0);
  for (int i = 0; i < 32; ++i) {
    EXPECT_NEAR(t.inv_freq[i], want[i], 1e-12 * want[i]) << "i=" << i;
    const double base = std::pow(150000.0, -2.0 * i / 64);
    if (i <= 8) {
      EXPECT_NEAR(t.inv_freq[i], base, 1e-12 * base) << "i=" << i;
    }
    if (i >= 18) {
      EXPECT_NEAR(t.inv_freq[i], base / 32, 1e-12 * base) << "i=" << i;
    }
  }
}

TEST(ComputeRopeTest, MagnitudeFactorIsOneTenthLnFactorPlusOne) {
  const RopeTables t = ComputeRope(Config20b());
  EXPECT_NEAR(t.attention_factor, 1.3465736, 1e-7);
  EXPECT_NEAR(t.attention_factor * t.attention_factor, 1.81325, 2e-5);  // spec: logits carry m^2 ~ 1.81325
}

TEST(ComputeRopeTest, OtherHeadDimUsesHalfTheHeadInTheCorrectionRange) {
  ModelConfig c = Config20b();
  c.head_dim = 16;  // the "tiny" preset
  const RopeTables t = ComputeRope(c);
  const std::vector<double> want = SpecInvFreq(16, 150000.0, 32.0, 4096.0, 32.0, 1.0);
  ASSERT_EQ(t.inv_freq.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(t.inv_freq[i], want[i], 1e-12 * want[i]) << "i=" << i;
}

TEST(ComputeRopeTest, NoScalingIsPlainRope) {
  ModelConfig c = Config20b();
  c.rope_scaling_factor = 1.0f;
  c.rope_original_context = 0;
  const RopeTables t = ComputeRope(c);
  EXPECT_EQ(t.attention_factor, 1.0);
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(150000.0, -2.0 * i / 64);
    EXPECT_NEAR(t.inv_freq[i], base, 1e-12 * base) << "i=" << i;
  }
}

// ---------------------------------------------------------------------------
// YaRN outside the reference's domain (issue 14): HF transformers'
// `_compute_yarn_parameters` with truncate=false, written out in float64.
// HF names the full head size `dim`: the correction dimension is
// dim·ln(L / (rotations·2π)) / (2·ln base); the low bound is clamped at 0
// from below, the high one at dim - 1 from above, and an empty range gets
// 0.001 added to its top.

double HfCorrectionDim(double rotations, int dim, double base, double original_context) {
  return dim * std::log(original_context / (rotations * 2 * std::numbers::pi)) / (2 * std::log(base));
}

std::vector<double> HfYarnInvFreq(int dim, double base, double factor, double original_context, double beta_fast,
                                  double beta_slow) {
  double low = std::max(HfCorrectionDim(beta_fast, dim, base, original_context), 0.0);
  double high = std::min(HfCorrectionDim(beta_slow, dim, base, original_context), dim - 1.0);
  if (low == high) high += 0.001;
  std::vector<double> out(dim / 2);
  for (int i = 0; i < dim / 2; ++i) {
    const double pos_freq = std::pow(base, 2.0 * i / dim);
    const double extrapolation = 1.0 / pos_freq;
    const double interpolation = 1.0 / (factor * pos_freq);
    const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
    const double extrapolation_factor = 1.0 - ramp;
    out[i] = interpolation * (1.0 - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return out;
}

void ExpectInvFreqEq(const RopeTables& got, const std::vector<double>& want) {
  ASSERT_EQ(got.inv_freq.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got.inv_freq[i], want[i], 1e-12 * want[i]) << "i=" << i;
}

// How many entries of a differ from b by more than a relative 1e-6: the
// cases below are only worth having where clamping changes the table.
int CountDiffering(const std::vector<double>& a, const std::vector<double>& b) {
  int n = 0;
  for (size_t i = 0; i < a.size(); ++i) n += std::fabs(a[i] - b[i]) > 1e-6 * b[i];
  return n;
}

TEST(ComputeRopeTest, OriginalContextBelowBetaFastTwoPiClampsTheLowBoundAtZero) {
  ModelConfig c = Config20b();
  c.rope_original_context = 64;  // < 32·2π ≈ 201: the unclamped low bound is about -3.07
  ASSERT_LT(HfCorrectionDim(32.0, 64, 150000.0, 64.0), 0.0);
  const std::vector<double> want = HfYarnInvFreq(64, 150000.0, 32.0, 64.0, 32.0, 1.0);
  ASSERT_GT(CountDiffering(want, SpecInvFreq(64, 150000.0, 32.0, 64.0, 32.0, 1.0)), 3);
  ExpectInvFreqEq(ComputeRope(c), want);
}

TEST(ComputeRopeTest, HighBoundBeyondHeadDimMinusOneIsClampedThere) {
  // theta 10 and head_dim 16 give low ≈ 4.0 and high ≈ 16.04 > 15, so
  // entries 5..7 sit on a ramp whose top HF moves from 16.04 to 15.
  ModelConfig c = Config20b();
  c.head_dim = 16;
  c.rope_theta = 10.0f;
  c.rope_original_context = 636;
  ASSERT_GT(HfCorrectionDim(1.0, 16, 10.0, 636.0), 15.0);
  ASSERT_LT(HfCorrectionDim(32.0, 16, 10.0, 636.0), 7.0);
  const std::vector<double> want = HfYarnInvFreq(16, 10.0, 32.0, 636.0, 32.0, 1.0);
  ASSERT_GT(CountDiffering(want, SpecInvFreq(16, 10.0, 32.0, 636.0, 32.0, 1.0)), 2);
  ExpectInvFreqEq(ComputeRope(c), want);
}

TEST(ComputeRopeTest, OriginalContextBelowTwoPiLeavesEveryFrequencyUnscaled) {
  // Original context 4 < 1·2π: both bounds are negative (-10.5 and -1.2).
  // HF clamps the low one to 0 and the high one only from above, so the
  // ramp (i - 0) / (-1.2 - 0) is <= 0 everywhere: nothing is interpolated.
  // Unclamped, the ramp was >= 1 everywhere: everything divided by 32.
  ModelConfig c = Config20b();
  c.rope_original_context = 4;
  const RopeTables t = ComputeRope(c);
  ExpectInvFreqEq(t, HfYarnInvFreq(64, 150000.0, 32.0, 4.0, 32.0, 1.0));
  for (int i = 0; i < 32; ++i) {
    const double base = std::pow(150000.0, -2.0 * i / 64);
    EXPECT_NEAR(t.inv_freq[i], base, 1e-12 * base) << "i=" << i;
  }
  EXPECT_NEAR(t.attention_factor, 0.1 * std::log(32.0) + 1.0, 1e-12);  // the magnitude factor still applies
}

TEST(ComputeRopeTest, The20bRangeIsInsideTheClampSoHfAndTheSpecAgree) {
  ExpectInvFreqEq(ComputeRope(Config20b()), HfYarnInvFreq(64, 150000.0, 32.0, 4096.0, 32.0, 1.0));
}

// ---------------------------------------------------------------------------
// Attention with a sink (spec §5.2.5): a_j = exp(s_j - z) / (exp(S - z) +
// sum exp(s_j - z)), s_j = scale q.k_j, the sink not scaled.

struct AttnRef {
  std::vector<double> out;
  std::vector<double> weights;  // a_j
  double logit_err = 0;          // bound on the float error of any s_j
};

AttnRef ReferenceAttention(const std::vector<float>& q, const std::vector<std::vector<float>>& k,
                           const std::vector<std::vector<float>>& v, double scale, double sink) {
  AttnRef r;
  const size_t n = k.size(), d = q.size();
  std::vector<double> s(n);
  double z = sink;
  for (size_t j = 0; j < n; ++j) {
    double dot = 0, abs_sum = 0;
    for (size_t i = 0; i < d; ++i) {
      dot += static_cast<double>(q[i]) * k[j][i];
      abs_sum += std::fabs(static_cast<double>(q[i]) * k[j][i]);
    }
    s[j] = scale * dot;
    r.logit_err = std::max(r.logit_err, (static_cast<double>(d) / 16 + 22) * kU * scale * abs_sum);
    z = std::max(z, s[j]);
  }
  double denom = std::exp(sink - z);
  for (size_t j = 0; j < n; ++j) denom += std::exp(s[j] - z);
  r.out.assign(d, 0.0);
  for (size_t j = 0; j < n; ++j) {
    r.weights.push_back(std::exp(s[j] - z) / denom);
    for (size_t i = 0; i < d; ++i) r.out[i] += r.weights[j] * v[j][i];
  }
  return r;
}

struct AttnInputs {
  std::vector<float> q;
  std::vector<std::vector<float>> k, v;
  std::vector<const float*> kp, vp;
};

AttnInputs RandomAttention(int64_t n_keys, int head_dim, uint64_t seed, float q_range = 2.0f) {
  AttnInputs in;
  in.q = RandomVector(head_dim, seed, -q_range, q_range);
  for (int64_t j = 0; j < n_keys; ++j) {
    in.k.push_back(RandomVector(head_dim, seed * 1000 + 2 * j + 1, -2, 2));
    in.v.push_back(RandomVector(head_dim, seed * 1000 + 2 * j + 2, -1, 1));
  }
  for (int64_t j = 0; j < n_keys; ++j) {
    in.kp.push_back(in.k[j].data());
    in.vp.push_back(in.v[j].data());
  }
  return in;
}

std::vector<float> RunAttention(const AttnInputs& in, float scale, float sink) {
  const int head_dim = static_cast<int>(in.q.size());
  const int64_t n = static_cast<int64_t>(in.k.size());
  std::vector<float> scratch(std::max<int64_t>(1, n), std::numeric_limits<float>::quiet_NaN());
  std::vector<float> out(head_dim, std::numeric_limits<float>::quiet_NaN());
  AttentionWithSink(in.q.data(), in.kp.data(), in.vp.data(), n, head_dim, scale, sink, scratch.data(), out.data());
  return out;
}

void ExpectAttentionNear(const std::vector<float>& got, const AttnRef& want, const AttnInputs& in,
                         const std::string& what) {
  for (size_t i = 0; i < got.size(); ++i) {
    // Relative error of each weight: about 2x the logit error plus a few
    // roundings of exp and the normalisation.
    double mag = 0;
    for (size_t j = 0; j < want.weights.size(); ++j) mag += want.weights[j] * std::fabs(in.v[j][i]);
    const double tol = (2 * want.logit_err + 64 * kU) * mag + (want.weights.size() + 4) * kU * mag + 1e-30;
    EXPECT_NEAR(got[i], want.out[i], tol) << what << " d=" << i;
  }
}

TEST(AttentionWithSinkTest, MatchesFloat64ForManyShapes) {
  uint64_t seed = 1;
  for (int head_dim : {1, 7, 64}) {
    for (int64_t n_keys : {1, 2, 5, 129}) {
      for (float sink : {-3.0f, 0.0f, 0.7f, 2.5f}) {
        const AttnInputs in = RandomAttention(n_keys, head_dim, seed++);
        const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
        const AttnRef want = ReferenceAttention(in.q, in.k, in.v, scale, sink);
        ExpectAttentionNear(RunAttention(in, scale, sink), want, in,
                            "head_dim=" + std::to_string(head_dim) + " n_keys=" + std::to_string(n_keys) +
                                " sink=" + std::to_string(sink));
      }
    }
  }
}

TEST(AttentionWithSinkTest, ManyKeys) {
  const AttnInputs in = RandomAttention(4096, 64, 99);
  const AttnRef want = ReferenceAttention(in.q, in.k, in.v, 0.125, 1.25);
  ExpectAttentionNear(RunAttention(in, 0.125f, 1.25f), want, in, "4096 keys");
}

TEST(AttentionWithSinkTest, LargeLogitsDoNotOverflow) {
  // q.k up to ~ 64 * 2 * 40 = 5000, times 0.125: exp() would overflow
  // without subtracting the maximum first.
  const AttnInputs in = RandomAttention(37, 64, 7, 40.0f);
  const AttnRef want = ReferenceAttention(in.q, in.k, in.v, 0.125, 3.0);
  const std::vector<float> got = RunAttention(in, 0.125f, 3.0f);
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
  ExpectAttentionNear(got, want, in, "large logits");
}

TEST(AttentionWithSinkTest, SinkIsNotMultipliedByTheScale) {
  // One key with q.k = 0 so s_0 = 0; values all 1: out = 1 / (1 + e^S).
  // Scaling the sink by 0.125 would give 1 / (1 + e^(S/8)).
  std::vector<float> q(64, 0.0f), k(64, 1.0f), v(64, 1.0f);
  const float* kp = k.data();
  const float* vp = v.data();
  float scratch[1];
  std::vector<float> out(64);
  AttentionWithSink(q.data(), &kp, &vp, 1, 64, 0.125f, 2.0f, scratch, out.data());
  for (float o : out) EXPECT_NEAR(o, 1.0 / (1.0 + std::exp(2.0)), 1e-6);
}

TEST(AttentionWithSinkTest, VeryNegativeSinkIsPlainSoftmax) {
  const AttnInputs in = RandomAttention(23, 64, 3);
  // Plain softmax over the keys only.
  std::vector<double> s;
  for (const auto& k : in.k) {
    double dot = 0;
    for (int i = 0; i < 64; ++i) dot += static_cast<double>(in.q[i]) * k[i];
    s.push_back(0.125 * dot);
  }
  const double z = *std::max_element(s.begin(), s.end());
  double denom = 0;
  for (double x : s) denom += std::exp(x - z);
  std::vector<double> plain(64, 0.0);
  for (size_t j = 0; j < s.size(); ++j) {
    for (int i = 0; i < 64; ++i) plain[i] += std::exp(s[j] - z) / denom * in.v[j][i];
  }
  for (float sink : {-1e4f, -1e30f, -std::numeric_limits<float>::infinity()}) {
    const std::vector<float> got = RunAttention(in, 0.125f, sink);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(got[i], plain[i], 1e-5) << "sink=" << sink << " d=" << i;
  }
  // With values all 1 the weights must sum to exactly ~1 (no sink mass).
  AttnInputs ones = in;
  for (auto& v : ones.v) std::fill(v.begin(), v.end(), 1.0f);
  for (size_t j = 0; j < ones.v.size(); ++j) ones.vp[j] = ones.v[j].data();
  for (float o : RunAttention(ones, 0.125f, -1e4f)) EXPECT_NEAR(o, 1.0, 1e-5);
}

TEST(AttentionWithSinkTest, HugeSinkTakesAlmostAllTheMass) {
  AttnInputs in = RandomAttention(50, 64, 4);
  for (auto& v : in.v) std::fill(v.begin(), v.end(), 1.0f);
  for (size_t j = 0; j < in.v.size(); ++j) in.vp[j] = in.v[j].data();
  // Logits are O(1); a sink of 60 leaves the keys ~e^-58 of the mass.
  const AttnRef want = ReferenceAttention(in.q, in.k, in.v, 0.125, 60.0);
  const std::vector<float> got = RunAttention(in, 0.125f, 60.0f);
  for (int i = 0; i < 64; ++i) {
    EXPECT_GE(got[i], 0.0f);
    EXPECT_LT(got[i], 1e-20f);
    EXPECT_NEAR(got[i], want.out[i], 1e-4 * want.out[i]);
  }
  // And with a moderate sink, rows sum to < 1 by exactly the sink's share.
  const AttnRef mid = ReferenceAttention(in.q, in.k, in.v, 0.125, 1.0);
  const std::vector<float> got_mid = RunAttention(in, 0.125f, 1.0f);
  for (int i = 0; i < 64; ++i) {
    EXPECT_LT(got_mid[i], 1.0f);
    EXPECT_NEAR(got_mid[i], mid.out[i], 1e-5);
  }
}

// ---------------------------------------------------------------------------
// Router (spec §5.2.8): top-k on raw logits, softmax over the chosen only.

struct RouterRef {
  std::vector<int32_t> ids;
  std::vector<double> weights;
};

RouterRef ReferenceRouter(const std::vector<float>& logits, int k) {
  std::vector<int32_t> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
  RouterRef r;
  r.ids.assign(order.begin(), order.begin() + k);
  double m = -std::numeric_limits<double>::infinity();
  for (int32_t id : r.ids) m = std::max(m, static_cast<double>(logits[id]));
  double sum = 0;
  for (int32_t id : r.ids) sum += std::exp(logits[id] - m);
  for (int32_t id : r.ids) r.weights.push_back(std::exp(logits[id] - m) / sum);
  return r;
}

void CheckRouter(const std::vector<float>& logits, int k, const std::string& what) {
  const int n = static_cast<int>(logits.size());
  std::vector<int32_t> ids(k, -1);
  std::vector<float> w(k, std::numeric_limits<float>::quiet_NaN());
  RouterTopK(logits.data(), n, k, ids.data(), w.data());
  const RouterRef want = ReferenceRouter(logits, k);
  // Compare as id -> weight maps: the order of the k outputs is not specified.
  std::vector<std::pair<int32_t, float>> got_pairs;
  for (int i = 0; i < k; ++i) got_pairs.push_back({ids[i], w[i]});
  std::sort(got_pairs.begin(), got_pairs.end());
  std::vector<std::pair<int32_t, double>> want_pairs;
  for (int i = 0; i < k; ++i) want_pairs.push_back({want.ids[i], want.weights[i]});
  std::sort(want_pairs.begin(), want_pairs.end());
  double total = 0;
  for (int i = 0; i < k; ++i) {
    EXPECT_EQ(got_pairs[i].first, want_pairs[i].first) << what << " slot " << i;
    EXPECT_NEAR(got_pairs[i].second, want_pairs[i].second, 4 * kU * (k + 2) * want_pairs[i].second + 1e-12)
        << what << " id " << want_pairs[i].first;
    total += got_pairs[i].second;
  }
  EXPECT_NEAR(total, 1.0, 1e-6) << what;
}

// The dense families' attention (no sink): the float64 softmax over the
// keys alone, for the shapes the sink version is checked on.
TEST(AttentionTest, MatchesFloat64PlainSoftmaxForManyShapes) {
  uint64_t seed = 500;
  for (int head_dim : {1, 16, 96}) {
    for (int64_t n_keys : {1, 2, 5, 129, 2047}) {
      const AttnInputs in = RandomAttention(n_keys, head_dim, seed++);
      const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
      // A sink of -inf contributes exp(-inf) = 0: the plain softmax.
      const AttnRef want = ReferenceAttention(in.q, in.k, in.v, scale, -std::numeric_limits<double>::infinity());
      std::vector<float> scratch(n_keys, std::numeric_limits<float>::quiet_NaN());
      std::vector<float> out(head_dim, std::numeric_limits<float>::quiet_NaN());
      Attention(in.q.data(), in.kp.data(), in.vp.data(), n_keys, head_dim, scale, scratch.data(), out.data());
      ExpectAttentionNear(out, want, in, "head_dim=" + std::to_string(head_dim) + " n_keys=" + std::to_string(n_keys));
    }
  }
}

TEST(AttentionTest, OneKeyGivesItsValueAndLargeLogitsDoNotOverflow) {
  const AttnInputs one = RandomAttention(1, 32, 77, 40.0f);
  std::vector<float> scratch(1), out(32);
  Attention(one.q.data(), one.kp.data(), one.vp.data(), 1, 32, 0.125f, scratch.data(), out.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], one.v[0][i]) << i;
  const AttnInputs in = RandomAttention(37, 64, 8, 40.0f);
  const AttnRef want = ReferenceAttention(in.q, in.k, in.v, 0.125, -std::numeric_limits<double>::infinity());
  std::vector<float> scratch2(37), got(64);
  Attention(in.q.data(), in.kp.data(), in.vp.data(), 37, 64, 0.125f, scratch2.data(), got.data());
  for (float x : got) ASSERT_TRUE(std::isfinite(x));
  ExpectAttentionNear(got, want, in, "large logits");
}

TEST(RouterTopKTest, MatchesReferenceForSeveralExpertCounts) {
  uint64_t seed = 11;
  for (int n : {4, 7, 32, 128}) {
    for (int k : {1, 2, 4}) {
      if (k > n) continue;
      std::vector<float> logits = RandomVector(n, seed++, -4.0f, 4.0f);
      CheckRouter(logits, k, "n=" + std::to_string(n) + " k=" + std::to_string(k));
    }
    // k = n: every expert chosen, weights = full softmax.
    CheckRouter(RandomVector(n, seed++, -4.0f, 4.0f), n, "k=n=" + std::to_string(n));
  }
}

TEST(RouterTopKTest, TiesGoToTheLowerIndex) {
  // Only four distinct values: many ties, including across the k boundary.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    std::vector<float> logits = RandomVector(32, 500 + seed, 0.0f, 4.0f);
    for (float& l : logits) l = std::floor(l);
    CheckRouter(logits, 4, "seed=" + std::to_string(seed));
  }
  const std::vector<float> flat(8, 0.5f);
  std::vector<int32_t> ids(4);
  std::vector<float> w(4);
  RouterTopK(flat.data(), 8, 4, ids.data(), w.data());
  std::vector<int32_t> sorted = ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, (std::vector<int32_t>{0, 1, 2, 3}));
  for (float x : w) EXPECT_NEAR(x, 0.25, 1e-7);
}

TEST(RouterTopKTest, SoftmaxIsOverTheChosenLogitsOnly) {
  // The unchosen experts carry most of the full-softmax mass if they were
  // included; the chosen weights must still sum to 1 with ratio e^(l_a - l_b).
  std::vector<float> logits = {5.0f, 1.0f, 4.9f, 4.8f, 0.0f, 4.7f, 4.6f, 4.5f};
  std::vector<int32_t> ids(2);
  std::vector<float> w(2);
  RouterTopK(logits.data(), 8, 2, ids.data(), w.data());
  std::vector<std::pair<int32_t, float>> got = {{ids[0], w[0]}, {ids[1], w[1]}};
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got[0].first, 0);
  ASSERT_EQ(got[1].first, 2);
  EXPECT_NEAR(got[0].second, 1.0 / (1.0 + std::exp(-0.1)), 1e-6);
  EXPECT_NEAR(got[1].second, 1.0 / (1.0 + std::exp(0.1)), 1e-6);
}

TEST(RouterTopKTest, LargeLogitsDoNotOverflow) {
  std::vector<float> logits = {1000.0f, 999.0f, -1000.0f, 998.0f, 0.0f};
  CheckRouter(logits, 3, "large");
}

// ---------------------------------------------------------------------------
// Clamped SwiGLU (spec §5.2.9): g' = min(g, 7), u' = clamp(u, -7, 7),
// a = g' sigmoid(1.702 g') (u' + 1).

double RefSwiGlu(double g, double u) {
  const double gc = std::min(g, 7.0);
  const double uc = std::min(7.0, std::max(-7.0, u));
  return gc / (1.0 + std::exp(-1.702 * gc)) * (uc + 1.0);
}

TEST(ClampedSwiGluTest, MatchesFloat64IncludingValuesBeyondTheLimit) {
  for (int64_t n : {1, 5, 64, 2881}) {
    const std::vector<float> g = RandomVector(n, 70 + n, -12.0f, 12.0f);
    const std::vector<float> u = RandomVector(n, 90 + n, -12.0f, 12.0f);
    std::vector<float> out(n, std::numeric_limits<float>::quiet_NaN());
    ClampedSwiGlu(g.data(), u.data(), n, 1.702f, 7.0f, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double want = RefSwiGlu(g[i], u[i]);
      EXPECT_NEAR(out[i], want, 32 * kU * std::fabs(want) + 1e-37) << "g=" << g[i] << " u=" << u[i];
    }
  }
}

TEST(ClampedSwiGluTest, GateClampedOnlyFromAboveUpOnBothSidesPlusOne) {
  struct Case {
    float g, u;
  };
  const Case cases[] = {
      {10.0f, 0.0f},    // gate clamped to 7
      {-10.0f, 0.0f},   // gate NOT clamped from below: -10 sigmoid(-17.02), not -7 sigmoid(-11.9)
      {-20.0f, 3.0f},   // deep negative gate stays tiny, not the clamped -7 value
      {1.0f, 10.0f},    // up clamped to 7 -> factor 8
      {1.0f, -10.0f},   // up clamped to -7 -> factor -6
      {1.0f, 0.0f},     // the +1: u = 0 still passes the gate through
      {1.0f, -1.0f},    // u = -1 -> exactly 0
      {7.0f, 7.0f},     // at the limit
  };
  for (const Case& c : cases) {
    float out = std::numeric_limits<float>::quiet_NaN();
    ClampedSwiGlu(&c.g, &c.u, 1, 1.702f, 7.0f, &out);
    const double want = RefSwiGlu(c.g, c.u);
    EXPECT_NEAR(out, want, 32 * kU * std::fabs(want) + 1e-37) << "g=" << c.g << " u=" << c.u;
  }
  // Spelled-out values so a symmetric clamp of the gate cannot pass.
  const float g = -10.0f, u = 0.0f;
  float out;
  ClampedSwiGlu(&g, &u, 1, 1.702f, 7.0f, &out);
  EXPECT_NEAR(out, -10.0 / (1.0 + std::exp(17.02)), 1e-12);
  EXPECT_GT(std::fabs(out - (-7.0 / (1.0 + std::exp(11.914)))), 1e-6);
  const float g1 = 1.0f, u1 = 0.0f;
  ClampedSwiGlu(&g1, &u1, 1, 1.702f, 7.0f, &out);
  EXPECT_NEAR(out, 1.0 / (1.0 + std::exp(-1.702)), 1e-6);
}

TEST(ClampedSwiGluTest, HonoursTheGivenAlphaAndLimit) {
  const float g[] = {-3.0f, 0.5f, 4.0f}, u[] = {-5.0f, 2.5f, 9.0f};
  float out[3];
  ClampedSwiGlu(g, u, 3, 1.0f, 3.0f, out);
  for (int i = 0; i < 3; ++i) {
    const double gc = std::min<double>(g[i], 3.0), uc = std::clamp<double>(u[i], -3.0, 3.0);
    EXPECT_NEAR(out[i], gc / (1 + std::exp(-gc)) * (uc + 1), 1e-5) << i;
  }
}

// silu(g) * u (HF's act_fn(gate) * up for hidden_act "silu"): no clamp, no
// alpha, no +1 on up, unlike gpt-oss's clamped SwiGLU.
TEST(SiluGluTest, MatchesFloat64AndIsNotTheClampedSwiGlu) {
  for (int64_t n : {1, 5, 64, 4864}) {
    const std::vector<float> g = RandomVector(n, 170 + n, -12.0f, 12.0f);
    const std::vector<float> u = RandomVector(n, 190 + n, -12.0f, 12.0f);
    std::vector<float> out(n, std::numeric_limits<float>::quiet_NaN());
    SiluGlu(g.data(), u.data(), n, out.data());
    for (int64_t i = 0; i < n; ++i) {
      const double want = double(g[i]) / (1.0 + std::exp(-double(g[i]))) * u[i];
      EXPECT_NEAR(out[i], want, 32 * kU * std::fabs(want) + 1e-37) << "g=" << g[i] << " u=" << u[i];
    }
  }
  const float g = 10.0f, u = 0.0f, g2 = 2.0f, u2 = 10.0f;
  float out;
  SiluGlu(&g, &u, 1, &out);
  EXPECT_EQ(out, 0.0f);  // no +1 on up
  SiluGlu(&g2, &u2, 1, &out);
  EXPECT_NEAR(out, 2.0 / (1.0 + std::exp(-2.0)) * 10.0, 1e-5);  // neither clamped nor alpha-scaled
}

}  // namespace
}  // namespace ossgate::model::cpu
