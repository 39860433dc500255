// The k-quants Q4_K and Q6_K against a float64 reference written here from
// the layout description (docs/quant-formats.md, after ggml-common.h and
// ggml-quants.c), not from ggml_types.{h,cc}: every field is read bit by bit
// at its position in the block, so a wrong packing, nibble order or element
// order in the library shows up as a mismatch.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"

namespace ossgate::gguf {
namespace {

constexpr float kInfF = std::numeric_limits<float>::infinity();
constexpr float kNaNF = std::numeric_limits<float>::quiet_NaN();

// --- float64 references ----------------------------------------------------------

// IEEE binary16 (finite patterns only: the tests never use others as scales).
double RefHalf(uint32_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  if (e == 0) return sign * std::ldexp(m, -24);
  return sign * std::ldexp(1024 + m, e - 25);
}

// `count` bits of a block starting at bit `first`; bit i is bit i % 8 of byte
// i / 8 (ggml fields are little-endian, nibbles low first).
uint32_t Bits(const uint8_t* block, int first, int count) {
  uint32_t v = 0;
  for (int i = 0; i < count; ++i) v |= ((block[(first + i) / 8] >> ((first + i) % 8)) & 1u) << i;
  return v;
}

// Q4_K, 144 bytes: fp16 d at byte 0, fp16 dmin at byte 2, 12 scale bytes at
// byte 4, 128 quant bytes at byte 16. Sub-block j < 4: scale = bits 0-5 of
// scale byte j, min = bits 0-5 of scale byte j + 4. j >= 4: scale = bits 0-3
// of scale byte j + 4 plus bits 6-7 of scale byte j - 4 as its bits 4-5; min
// = bits 4-7 of scale byte j + 4 plus bits 6-7 of scale byte j as bits 4-5.
// Element e = 64g + r: quant byte 32g + r % 32, low nibble for r < 32.
// Value: d * scale_{e/32} * q - dmin * min_{e/32}.
struct RefQ4K {
  double d, dmin;
  int sc[8], m[8];
  int q[256];
  double Value(int e) const { return d * sc[e / 32] * q[e] - dmin * m[e / 32]; }
};

RefQ4K ParseQ4K(const uint8_t* b) {
  RefQ4K r;
  r.d = RefHalf(Bits(b, 0, 16));
  r.dmin = RefHalf(Bits(b, 16, 16));
  auto scale_byte_bit = [](int k) { return 32 + 8 * k; };
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      r.sc[j] = static_cast<int>(Bits(b, scale_byte_bit(j), 6));
      r.m[j] = static_cast<int>(Bits(b, scale_byte_bit(j + 4), 6));
    } else {
      r.sc[j] = static_cast<int>(Bits(b, scale_byte_bit(j + 4), 4) + (Bits(b, scale_byte_bit(j - 4) + 6, 2) << 4));
      r.m[j] = static_cast<int>(Bits(b, scale_byte_bit(j + 4) + 4, 4) + (Bits(b, scale_byte_bit(j) + 6, 2) << 4));
    }
  }
  for (int e = 0; e < 256; ++e) {
    const int g = e / 64, rr = e % 64;
    r.q[e] = static_cast<int>(Bits(b, 8 * (16 + 32 * g + rr % 32) + 4 * (rr / 32), 4));
  }
  return r;
}

// Q6_K, 210 bytes: 128 bytes ql at byte 0, 64 bytes qh at byte 128, 16 int8
// scales at byte 192, fp16 d at byte 208. Element e = 128h + 32k + l: low 4
// bits in ql byte 64h + 32(k % 2) + l (low nibble for k < 2), top 2 bits at
// bits 2k, 2k+1 of qh byte 32h + l. Value: d * scale_{e/16} * (q - 32).
struct RefQ6K {
  double d;
  int sc[16];
  int q[256];
  double Value(int e) const { return d * sc[e / 16] * (q[e] - 32); }
};

RefQ6K ParseQ6K(const uint8_t* b) {
  RefQ6K r;
  r.d = RefHalf(Bits(b, 8 * 208, 16));
  for (int s = 0; s < 16; ++s) r.sc[s] = static_cast<int8_t>(Bits(b, 8 * (192 + s), 8));
  for (int e = 0; e < 256; ++e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint32_t low = Bits(b, 8 * (64 * h + 32 * (k % 2) + l) + 4 * (k / 2), 4);
    const uint32_t high = Bits(b, 8 * (128 + 32 * h + l) + 2 * k, 2);
    r.q[e] = static_cast<int>(low | (high << 4));
  }
  return r;
}

// A finite fp16 pattern: uniform over the finite patterns (subnormals
// included, about 3% of them), or one of the extremes.
uint16_t RandomFiniteHalf(std::mt19937& rng) {
  switch (rng() % 8) {
    case 0: return 0x7BFF;                                     // largest
    case 1: return static_cast<uint16_t>(rng() % 0x400);       // subnormal or zero
    case 2: return 0;
    default: {
      uint16_t h;
      do {
        h = static_cast<uint16_t>(rng());
      } while ((h & 0x7C00) == 0x7C00);
      return h;
    }
  }
}

// Random blocks of `bytes` bytes with finite fp16 scales at `half_at`, plus
// an all-zero block and an all-ones-except-scales block (every quant, scale
// and min at its maximum).
std::vector<uint8_t> RandomBlocks(std::mt19937& rng, int count, int bytes, std::vector<int> half_at) {
  std::vector<uint8_t> out(static_cast<size_t>(count) * bytes);
  for (uint8_t& v : out) v = static_cast<uint8_t>(rng());
  for (int b = 0; b < count; ++b) {
    for (int at : half_at) {
      const uint16_t h = RandomFiniteHalf(rng);
      out[b * bytes + at] = static_cast<uint8_t>(h);
      out[b * bytes + at + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
  std::fill(out.begin(), out.begin() + bytes, 0);  // zero block
  std::fill(out.begin() + bytes, out.begin() + 2 * bytes, 0xFF);
  for (int at : half_at) {  // largest finite scales
    out[bytes + at] = 0xFF;
    out[bytes + at + 1] = 0x7B;
  }
  return out;
}

// --- Layout and type table ----------------------------------------------------------

TEST(KQuantTypes, TraitsAndRowBytesFollowTheBlockSizes) {
  const auto q4 = GetTypeTraits(12), q6 = GetTypeTraits(14);
  ASSERT_TRUE(q4.has_value());
  ASSERT_TRUE(q6.has_value());
  EXPECT_STREQ(q4->name, "Q4_K");
  EXPECT_EQ(q4->block_elems, 256);
  EXPECT_EQ(q4->block_bytes, 2 + 2 + 12 + 128);
  EXPECT_STREQ(q6->name, "Q6_K");
  EXPECT_EQ(q6->block_elems, 256);
  EXPECT_EQ(q6->block_bytes, 128 + 64 + 16 + 2);
  EXPECT_STREQ(GgmlTypeName(12), "Q4_K");
  EXPECT_STREQ(GgmlTypeName(14), "Q6_K");
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ4_K), 12u);
  EXPECT_EQ(static_cast<uint32_t>(GgmlType::kQ6_K), 14u);
  // Phi-3-mini's d_model 3072 and d_ff 8192 (12 and 32 super-blocks).
  EXPECT_EQ(RowBytes(GgmlType::kQ4_K, 3072), 12 * 144);
  EXPECT_EQ(RowBytes(GgmlType::kQ6_K, 8192), 32 * 210);
  // The other k-quants stay unsupported (Q5_K: ggml_types_test).
  for (uint32_t id : {10u, 11u, 15u}) EXPECT_FALSE(GetTypeTraits(id).has_value()) << id;
}

// --- Dequantization against the reference ---------------------------------------

TEST(Q4KTest, DequantizeMatchesTheBitLevelReference) {
  std::mt19937 rng(11);
  constexpr int kBlocks = 3000;
  const std::vector<uint8_t> bytes = RandomBlocks(rng, kBlocks, 144, {0, 2});
  std::vector<float> out(kBlocks * 256);
  DequantizeRow(GgmlType::kQ4_K, bytes.data(), out.data(), kBlocks * 256);
  for (int b = 0; b < kBlocks; ++b) {
    const RefQ4K ref = ParseQ4K(&bytes[b * 144]);
    for (int e = 0; e < 256; ++e) {
      // Products are exact in float; the subtraction rounds once, so the
      // result is the float nearest the exact value.
      ASSERT_EQ(out[b * 256 + e], static_cast<float>(ref.Value(e))) << "block " << b << " element " << e;
    }
  }
  for (int e = 0; e < 256; ++e) ASSERT_EQ(out[e], 0.0f) << "zero block";
  // All ones: scale 63, min 63, q 15, d = dmin = 65504: 65504 * 63 * 15 - 65504 * 63.
  EXPECT_EQ(out[256], 65504.0f * 63 * 14);
}

TEST(Q6KTest, DequantizeMatchesTheBitLevelReferenceExactly) {
  std::mt19937 rng(12);
  constexpr int kBlocks = 3000;
  const std::vector<uint8_t> bytes = RandomBlocks(rng, kBlocks, 210, {208});
  std::vector<float> out(kBlocks * 256);
  DequantizeRow(GgmlType::kQ6_K, bytes.data(), out.data(), kBlocks * 256);
  for (int b = 0; b < kBlocks; ++b) {
    const RefQ6K ref = ParseQ6K(&bytes[b * 210]);
    for (int e = 0; e < 256; ++e) {
      ASSERT_EQ(static_cast<double>(out[b * 256 + e]), ref.Value(e)) << "block " << b << " element " << e;
    }
  }
  for (int e = 0; e < 256; ++e) ASSERT_EQ(out[e], 0.0f) << "zero block";
  // All ones: scales -1, q 63, d = 65504.
  EXPECT_EQ(out[256], -65504.0f * 31);
}

// Hand-made Q4_K block. The scale bytes were packed by hand from the chosen
// scales sc = {1, 2, 3, 4, 50, 63, 16, 33} and mins m = {0, 1, 2, 63, 33, 5,
// 48, 17} following ggml-quants.c (quantize_row_q4_K_ref packs, and
// get_scale_min_k4 unpacks): byte j (j < 4) = sc_j | (sc_{j+4} >> 4) << 6,
// byte j + 4 = m_j | (m_{j+4} >> 4) << 6, byte j + 8 = (sc_{j+4} & 15) |
// (m_{j+4} & 15) << 4. The expected values are d * sc * q - dmin * m worked
// out by hand with d = 1 and dmin = 0.5 (dequantize_row_q4_K).
TEST(Q4KTest, HandMadeBlockDecodesToHandComputedValues) {
  uint8_t b[144] = {};
  b[0] = 0x00, b[1] = 0x3C;  // d = 1.0
  b[2] = 0x00, b[3] = 0x38;  // dmin = 0.5
  const uint8_t scales[12] = {0xC1, 0xC2, 0x43, 0x84, 0x80, 0x01, 0xC2, 0x7F, 0x12, 0x5F, 0x00, 0x11};
  std::memcpy(b + 4, scales, 12);
  uint8_t* qs = b + 16;
  qs[0] = 0x73;   // element 0: q 3 (sub-block 0); element 32: q 7 (sub-block 1)
  qs[31] = 0xF0;  // element 31: q 0; element 63: q 15
  qs[32] = 0x2E;  // element 64: q 14 (sub-block 2); element 96: q 2 (sub-block 3)
  qs[69] = 0xA1;  // element 133: q 1 (sub-block 4); element 165: q 10 (sub-block 5)
  qs[127] = 0x9F;  // element 223: q 15 (sub-block 6); element 255: q 9 (sub-block 7)
  // Every other element has q 0: -dmin * m of its sub-block.
  const double at_zero[8] = {0.0, -0.5, -1.0, -31.5, -16.5, -2.5, -24.0, -8.5};
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) want[e] = at_zero[e / 32];
  want[0] = 1 * 3 - 0.0;           // 3
  want[32] = 2 * 7 - 0.5;          // 13.5
  want[31] = 0.0;
  want[63] = 2 * 15 - 0.5;         // 29.5
  want[64] = 3 * 14 - 1.0;         // 41
  want[96] = 4 * 2 - 31.5;         // -23.5
  want[133] = 50 * 1 - 16.5;       // 33.5
  want[165] = 63 * 10 - 2.5;       // 627.5
  want[223] = 16 * 15 - 24.0;      // 216
  want[255] = 33 * 9 - 8.5;        // 288.5

  const RefQ4K ref = ParseQ4K(b);
  const int sc[8] = {1, 2, 3, 4, 50, 63, 16, 33}, m[8] = {0, 1, 2, 63, 33, 5, 48, 17};
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(ref.sc[j], sc[j]) << "reference self-check, sub-block " << j;
    EXPECT_EQ(ref.m[j], m[j]) << "reference self-check, sub-block " << j;
    int got_sc = -1, got_m = -1;
    Q4KScaleMin(b + 4, j, &got_sc, &got_m);
    EXPECT_EQ(got_sc, sc[j]) << "Q4KScaleMin, sub-block " << j;
    EXPECT_EQ(got_m, m[j]) << "Q4KScaleMin, sub-block " << j;
  }
  float out[256];
  DequantizeRow(GgmlType::kQ4_K, b, out, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(ref.Value(e), want[e]) << "reference self-check, element " << e;
    EXPECT_EQ(static_cast<double>(out[e]), want[e]) << "element " << e;
  }
}

// Hand-made Q6_K block: d = 0.5, scales = {1, -1, 2, -2, ..., 7, -7, 127,
// -128}. The quant bits were placed by hand following dequantize_row_q6_K
// (ggml-quants.c): element 128h + 32k + l takes the low nibble (k < 2) or
// high nibble (k >= 2) of ql[64h + 32(k % 2) + l] and bits 2k, 2k+1 of
// qh[32h + l]. Values d * scale * (q - 32) worked out by hand.
TEST(Q6KTest, HandMadeBlockDecodesToHandComputedValues) {
  uint8_t b[210] = {};
  const int8_t scales[16] = {1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 127, -128};
  std::memcpy(b + 192, scales, 16);
  b[208] = 0x00, b[209] = 0x38;  // d = 0.5
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  ql[0] = 0x0F, qh[0] = 0x03;     // element 0 (h0 k0 l0): q 63
  ql[49] = 0x05;                  // element 49 (h0 k1 l17): q 5
  ql[3] = 0xA0, qh[3] = 0x20;     // element 67 (h0 k2 l3): q 42 = 0b10'1010
  ql[63] = 0x10, qh[31] = 0x80;   // element 127 (h0 k3 l31): q 33 = 0b10'0001
  ql[64] = 0x07, qh[32] = 0x02;   // element 128 (h1 k0 l0): q 39 = 0b10'0111
  ql[111] = 0xF0, qh[47] = 0xC0;  // element 239 (h1 k3 l15): q 63
  // Every other element has q 0: 0.5 * scale * -32 = -16 * scale.
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) want[e] = -16.0 * scales[e / 16];
  want[0] = 0.5 * 1 * 31;       // 15.5
  want[49] = 0.5 * -2 * -27;    // 27
  want[67] = 0.5 * 3 * 10;      // 15
  want[127] = 0.5 * -4 * 1;     // -2
  want[128] = 0.5 * 5 * 7;      // 17.5
  want[239] = 0.5 * 127 * 31;   // 1968.5
  EXPECT_EQ(want[255], 2048.0);  // scale -128, q 0

  const RefQ6K ref = ParseQ6K(b);
  float out[256];
  DequantizeRow(GgmlType::kQ6_K, b, out, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(ref.Value(e), want[e]) << "reference self-check, element " << e;
    EXPECT_EQ(static_cast<double>(out[e]), want[e]) << "element " << e;
  }
}

// --- Quantization: round trip within half a step ------------------------------------

// Inputs: normal and uniform values over many magnitudes (fp16 subnormal
// scales at the small end), one-signed blocks, sparse blocks, constant and
// zero blocks, one huge outlier per block.
std::vector<float> RoundTripInputs() {
  std::mt19937 rng(13);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x;
  auto block = [&](auto gen) {
    for (int i = 0; i < 256; ++i) x.push_back(gen(i));
  };
  for (double mag : {1e-7, 1e-5, 1e-3, 0.02, 1.0, 30.0, 1e3, 1e5}) {
    for (int rep = 0; rep < 6; ++rep) {
      block([&](int) { return static_cast<float>(normal(rng) * mag); });
      block([&](int) { return static_cast<float>(uniform(rng) * mag); });
      block([&](int) { return static_cast<float>(std::fabs(normal(rng)) * mag); });
      block([&](int) { return static_cast<float>(-std::fabs(normal(rng)) * mag); });
      block([&](int i) { return i % 7 == 0 ? static_cast<float>(normal(rng) * mag) : 0.0f; });
      // One outlier 1000x the rest (within the scales' reach: below ~6e7).
      if (mag <= 1e3) block([&](int i) { return static_cast<float>((i == 77 ? 1000.0 : 1.0) * normal(rng) * mag); });
      // Sub-blocks of very different spread.
      block([&](int i) { return static_cast<float>(normal(rng) * mag * std::ldexp(1.0, (i / 32) - 4)); });
    }
  }
  block([](int) { return 0.0f; });
  block([](int) { return 0.75f; });
  block([](int) { return -3.0f; });
  return x;
}

// The result of one k-quant block against its input: every element within
// half its sub-block's step (plus float rounding), and the steps no coarser
// than the quantizer documented at QuantizeRow promises.
void ExpectQ4KBlockWithinHalfAStep(const float* x, const uint8_t* block, const float* y) {
  const RefQ4K r = ParseQ4K(block);
  double need_max = 0, off_max = 0;
  double lo[8], hi[8];
  for (int j = 0; j < 8; ++j) {
    lo[j] = 0, hi[j] = 0;
    for (int i = 0; i < 32; ++i) {
      lo[j] = std::min(lo[j], static_cast<double>(x[32 * j + i]));
      hi[j] = std::max(hi[j], static_cast<double>(x[32 * j + i]));
    }
    off_max = std::max(off_max, -lo[j]);
  }
  // dmin: the fp16 at or just above max(-lo) / 63 (2^-10 relative: one fp16 step up).
  ASSERT_LE(r.dmin, off_max / 63 * (1 + std::ldexp(1.0, -9)) + std::ldexp(1.0, -24));
  ASSERT_GE(r.dmin * 63, off_max * (1 - 1e-6));
  for (int j = 0; j < 8; ++j) need_max = std::max(need_max, (hi[j] + r.dmin * r.m[j]) / 15);
  ASSERT_LE(r.d, need_max / 63 * (1 + std::ldexp(1.0, -9)) + std::ldexp(1.0, -24));
  for (int j = 0; j < 8; ++j) {
    const double step = r.d * r.sc[j], off = r.dmin * r.m[j];
    // The ranges cover the data: the bottom at or below lo, the top at or above hi.
    ASSERT_LE(-off, lo[j] + 1e-6 * std::fabs(lo[j])) << "sub-block " << j;
    ASSERT_GE(15 * step - off, hi[j] - 1e-6 * std::fabs(hi[j])) << "sub-block " << j;
    // Rounding the scales up costs at most one unit of d and dmin.
    ASSERT_LE(step, (hi[j] - lo[j] + r.dmin) / 15 + r.d * (1 + 1e-6) + 1e-30) << "sub-block " << j;
    for (int i = 0; i < 32; ++i) {
      const int e = 32 * j + i;
      ASSERT_EQ(static_cast<float>(r.Value(e)), y[e]) << "decode, element " << e;
      const double slack = 1e-6 * std::max({std::fabs(static_cast<double>(x[e])), off, 15 * step});
      ASSERT_LE(std::fabs(x[e] - r.Value(e)), step / 2 + slack) << "element " << e << " x=" << x[e];
    }
  }
}

void ExpectQ6KBlockWithinHalfAStep(const float* x, const uint8_t* block, const float* y) {
  const RefQ6K r = ParseQ6K(block);
  double step_max = 0;
  double amax[16];
  for (int s = 0; s < 16; ++s) {
    amax[s] = 0;
    for (int i = 0; i < 16; ++i) amax[s] = std::max(amax[s], std::fabs(static_cast<double>(x[16 * s + i])));
    step_max = std::max(step_max, amax[s] / 31.5);
  }
  ASSERT_LE(r.d, step_max / 127 * (1 + std::ldexp(1.0, -9)) + std::ldexp(1.0, -24));
  for (int s = 0; s < 16; ++s) {
    ASSERT_GE(r.sc[s], 0) << "this quantizer uses non-negative scales";
    const double step = r.d * r.sc[s];
    ASSERT_GE(step * 31.5, amax[s] * (1 - 1e-6)) << "sub-block " << s;
    ASSERT_LE(step, amax[s] / 31.5 + r.d * (1 + 1e-6) + 1e-30) << "sub-block " << s;
    for (int i = 0; i < 16; ++i) {
      const int e = 16 * s + i;
      ASSERT_EQ(static_cast<double>(y[e]), r.Value(e)) << "decode, element " << e;
      ASSERT_LE(std::fabs(x[e] - r.Value(e)), step / 2 + 1e-6 * amax[s]) << "element " << e << " x=" << x[e];
    }
  }
}

TEST(Q4KTest, QuantizeThenDequantizeStaysWithinHalfAStep) {
  const std::vector<float> x = RoundTripInputs();
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(RowBytes(GgmlType::kQ4_K, n)));
  QuantizeRow(GgmlType::kQ4_K, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kQ4_K, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 256; ++b) {
    SCOPED_TRACE(::testing::Message() << "block " << b);
    ExpectQ4KBlockWithinHalfAStep(&x[b * 256], &q[b * 144], &y[b * 256]);
  }
  // -3.0 everywhere: the bottom of each sub-block's range, -dmin * m, which
  // is -3 rounded down by at most one fp16 step of dmin (2^-10 relative).
  const int64_t last = n / 256 - 1;
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(y[last * 256 + e], y[last * 256]) << "a constant block stays constant";
    EXPECT_NEAR(y[last * 256 + e], -3.0f, 3.0 * std::ldexp(1.0, -10));
  }
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[(last - 2) * 256 + e], 0.0f) << "zero block";
}

TEST(Q6KTest, QuantizeThenDequantizeStaysWithinHalfAStep) {
  const std::vector<float> x = RoundTripInputs();
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(RowBytes(GgmlType::kQ6_K, n)));
  QuantizeRow(GgmlType::kQ6_K, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kQ6_K, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 256; ++b) {
    SCOPED_TRACE(::testing::Message() << "block " << b);
    ExpectQ6KBlockWithinHalfAStep(&x[b * 256], &q[b * 210], &y[b * 256]);
  }
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[(n / 256 - 3) * 256 + e], 0.0f) << "zero block";
}

// On weight-like data the relative RMS error is what 4.5 and 6.6 bits buy:
// Q4_K's step is about a sub-block's range / 15 (RMS error step / sqrt(12)),
// Q6_K's about 2 * amax / 63 of 16 elements.
TEST(KQuantTest, RelativeRmsErrorOnGaussianWeights) {
  std::mt19937 rng(14);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> x(256 * 512);
  for (float& v : x) v = normal(rng);
  auto rel_rms = [&](GgmlType type) {
    std::vector<uint8_t> q(static_cast<size_t>(RowBytes(type, static_cast<int64_t>(x.size()))));
    std::vector<float> y(x.size());
    QuantizeRow(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
    DequantizeRow(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
    double err = 0, ref = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      err += (x[i] - static_cast<double>(y[i])) * (x[i] - static_cast<double>(y[i]));
      ref += static_cast<double>(x[i]) * x[i];
    }
    return std::sqrt(err / ref);
  };
  const double q4 = rel_rms(GgmlType::kQ4_K), q6 = rel_rms(GgmlType::kQ6_K), q8 = rel_rms(GgmlType::kQ8_0);
  EXPECT_LT(q4, 0.12) << "Q4_K";
  EXPECT_LT(q6, 0.03) << "Q6_K";
  EXPECT_LT(q8, q6) << "Q8_0 is finer than Q6_K";
  EXPECT_LT(q6, q4) << "Q6_K is finer than Q4_K";
  RecordProperty("q4_k_rel_rms", std::to_string(q4));
  RecordProperty("q6_k_rel_rms", std::to_string(q6));
}

TEST(KQuantTest, QuantizeIsDeterministicAndIndependentOfTheRowSplit) {
  const std::vector<float> x = RoundTripInputs();
  const int64_t n = static_cast<int64_t>(x.size());
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    const int64_t bytes = RowBytes(type, n), block_bytes = RowBytes(type, 256);
    std::vector<uint8_t> whole(static_cast<size_t>(bytes)), again(whole.size()), split(whole.size(), 0xAB);
    QuantizeRow(type, x.data(), whole.data(), n);
    QuantizeRow(type, x.data(), again.data(), n);
    for (int64_t b = 0; b < n / 256; ++b) QuantizeRow(type, &x[b * 256], &split[b * block_bytes], 256);
    EXPECT_EQ(whole, again) << GgmlTypeName(static_cast<uint32_t>(type));
    EXPECT_EQ(whole, split) << GgmlTypeName(static_cast<uint32_t>(type));
  }
}

TEST(KQuantTest, NonFiniteInputsSaturateOrBecomeZeroAndHugeOnesClip) {
  std::vector<float> x(512, 0.0f);
  for (int i = 0; i < 32; ++i) x[i] = 0.01f * static_cast<float>(i - 10);  // sub-block 0: [-0.1, 0.21]
  x[3] = kInfF;
  x[4] = -kInfF;
  x[5] = kNaNF;
  for (int i = 256; i < 512; ++i) x[i] = (i % 2 ? 1e30f : -1e30f);  // second block: beyond every scale
  for (GgmlType type : {GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    SCOPED_TRACE(GgmlTypeName(static_cast<uint32_t>(type)));
    std::vector<uint8_t> q(static_cast<size_t>(RowBytes(type, 512)));
    std::vector<float> y(512);
    QuantizeRow(type, x.data(), q.data(), 512);
    DequantizeRow(type, q.data(), y.data(), 512);
    float lo = 0.0f, hi = 0.0f;
    for (int i = 0; i < 32; ++i) {
      if (i >= 3 && i <= 5) continue;
      lo = std::min(lo, y[i]);
      hi = std::max(hi, y[i]);
    }
    if (type == GgmlType::kQ4_K) {
      EXPECT_EQ(y[3], hi) << "+inf saturates to the top of its sub-block";
      EXPECT_EQ(y[4], lo) << "-inf saturates to the bottom of its sub-block";
    } else {
      // Sub-block 0 of Q6_K is elements 0..15, amax 0.1: the top is 31 steps
      // of 0.1 / 31.5 (or a little more), the bottom -32 steps.
      EXPECT_GE(y[3], 0.098f) << "+inf saturates to the top of its sub-block";
      EXPECT_LE(y[4], -0.1f) << "-inf saturates to the bottom of its sub-block";
    }
    EXPECT_LE(std::fabs(y[5]), 0.011f) << "NaN encodes as the value nearest 0";
    for (int i = 256; i < 512; ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << i;
      ASSERT_GT(std::fabs(y[i]), 1e6f) << "clipped at the largest scale, not wrapped: " << i;
      ASSERT_EQ(std::signbit(y[i]), std::signbit(x[i])) << i;
    }
    const size_t d_at = type == GgmlType::kQ4_K ? RowBytes(type, 256) : RowBytes(type, 256) + 208;
    EXPECT_EQ(q[d_at] | (q[d_at + 1] << 8), 0x7BFF) << "the super-block scale saturates at the largest fp16";
  }
}

}  // namespace
}  // namespace ossgate::gguf
