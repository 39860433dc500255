// ggml element formats against float64 references written here from the spec
// text (docs/gpt-oss-spec.md §1-§2), not from ggml_types.{h,cc}.
#include "inference_worker/gguf/ggml_types.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace ossgate::gguf {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kFloatMax = std::numeric_limits<float>::max();
constexpr float kFloatMaxF = std::numeric_limits<float>::max();

// --- float64 references ---------------------------------------------------------

// IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
double RefHalf(uint16_t h) {
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  const int e = (h >> 10) & 0x1F;
  const int m = h & 0x3FF;
  if (e == 0) return sign * std::ldexp(m, -24);  // subnormal: m * 2^-14 / 1024
  if (e == 31) return m ? std::numeric_limits<double>::quiet_NaN() : sign * kInf;
  return sign * std::ldexp(1024 + m, e - 15 - 10);
}

// bfloat16: 1 sign, 8 exponent (bias 127), 7 mantissa bits.
double RefBf16(uint16_t b) {
  const double sign = (b & 0x8000) ? -1.0 : 1.0;
  const int e = (b >> 7) & 0xFF;
  const int m = b & 0x7F;
  if (e == 0) return sign * std::ldexp(m, -126 - 7);
  if (e == 255) return m ? std::numeric_limits<double>::quiet_NaN() : sign * kInf;
  return sign * std::ldexp(128 + m, e - 127 - 7);
}

// Magnitude of a non-negative pattern for rounding purposes: the infinity
// pattern counts as the next power of two (IEEE rounds as if the exponent
// range were unbounded, then overflows to infinity).
double RoundingValue(uint16_t pattern, uint16_t inf_pattern, double (*decode)(uint16_t), double overflow) {
  return pattern == inf_pattern ? overflow : decode(pattern);
}

// Round-to-nearest-even of |x| onto the non-negative patterns [0, inf_pattern],
// by search over the (monotone) patterns.
uint16_t RefRoundMagnitude(double a, uint16_t inf_pattern, double (*decode)(uint16_t), double overflow) {
  uint16_t lo = 0, hi = inf_pattern;  // invariant: value(lo) <= a < value(hi) once a < overflow
  if (a >= overflow) return inf_pattern;
  while (hi - lo > 1) {
    const uint16_t mid = static_cast<uint16_t>((lo + hi) / 2);
    if (RoundingValue(mid, inf_pattern, decode, overflow) <= a) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  const double below = a - RoundingValue(lo, inf_pattern, decode, overflow);
  const double above = RoundingValue(hi, inf_pattern, decode, overflow) - a;
  if (below < above) return lo;
  if (above < below) return hi;
  return (lo & 1) == 0 ? lo : hi;  // tie: even mantissa
}

uint16_t RefFloatToHalf(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  return static_cast<uint16_t>(sign | RefRoundMagnitude(std::fabs(static_cast<double>(f)), 0x7C00, RefHalf, 65536.0));
}

uint16_t RefFloatToBf16(float f) {
  const uint16_t sign = std::signbit(f) ? 0x8000 : 0;
  return static_cast<uint16_t>(sign |
                               RefRoundMagnitude(std::fabs(static_cast<double>(f)), 0x7F80, RefBf16, std::ldexp(1.0, 128)));
}

// E2M1 (spec §2.1): bit 3 sign, bits 2..1 exponent, bit 0 mantissa.
double RefE2M1(int code) {
  const int e = (code >> 1) & 3, m = code & 1;
  const double mag = e == 0 ? 0.5 * m : std::ldexp(1.0 + 0.5 * m, e - 1);
  return (code & 8) ? -mag : mag;
}

// Spec text for one ggml MXFP4 block: low nibble of byte j is element j,
// high nibble element j + 16; value = E2M1(code) * 2^(e - 127).
std::vector<double> RefDecodeMxfp4(const uint8_t block[17]) {
  std::vector<double> out(32);
  const double scale = std::ldexp(1.0, block[0] - 127);
  for (int j = 0; j < 16; ++j) {
    out[j] = RefE2M1(block[1 + j] & 0x0F) * scale;
    out[j + 16] = RefE2M1(block[1 + j] >> 4) * scale;
  }
  return out;
}

// A float result equals a float64 reference: exactly, or as infinity when the
// reference lies beyond float's range.
::testing::AssertionResult FloatMatches(float got, double want) {
  if (std::fabs(want) > kFloatMax) {
    if (std::isinf(got) && std::signbit(got) == std::signbit(want)) return ::testing::AssertionSuccess();
  } else if (static_cast<double>(got) == want) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "got " << got << ", want " << want;
}

std::vector<float> RandomFloats(std::mt19937& rng, size_t n) {
  std::vector<float> v;
  std::uniform_int_distribution<uint32_t> bits;
  while (v.size() < n) {
    const float f = std::bit_cast<float>(bits(rng));
    if (!std::isnan(f)) v.push_back(f);
  }
  return v;
}

// --- Self-checks of the references against hand-computed values --------------

TEST(ReferenceSelfCheck, HandValues) {
  EXPECT_EQ(RefHalf(0x3C00), 1.0);
  EXPECT_EQ(RefHalf(0x7BFF), 65504.0);
  EXPECT_EQ(RefHalf(0x0001), std::ldexp(1.0, -24));
  EXPECT_EQ(RefHalf(0x0400), std::ldexp(1.0, -14));
  EXPECT_EQ(RefHalf(0xC000), -2.0);
  EXPECT_EQ(RefBf16(0x3F80), 1.0);
  EXPECT_EQ(RefBf16(0x0001), std::ldexp(1.0, -133));
  EXPECT_EQ(RefFloatToHalf(65519.0f), 0x7BFF);
  EXPECT_EQ(RefFloatToHalf(65520.0f), 0x7C00);
  EXPECT_EQ(RefFloatToHalf(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie to even
  EXPECT_EQ(RefFloatToHalf(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);  // tie to even (up)
  const double e2m1[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  for (int c = 0; c < 8; ++c) {
    EXPECT_EQ(RefE2M1(c), e2m1[c]);
    EXPECT_EQ(RefE2M1(c + 8), -e2m1[c]);
  }
}

// --- fp16 ------------------------------------------------------------------------

TEST(Fp16Test, ToFloatMatchesReferenceForAll65536Values) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float got = Fp16ToFloat(static_cast<uint16_t>(h));
    const double want = RefHalf(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      // NaN keeps its sign and payload (mantissa shifted into the top of float's).
      const uint32_t expect_bits = ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13);
      ASSERT_EQ(std::bit_cast<uint32_t>(got), expect_bits) << std::hex << h;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << std::hex << h;
      ASSERT_EQ(std::signbit(got), (h & 0x8000) != 0) << std::hex << h;
    }
  }
}

TEST(Fp16Test, RowDequantizationMatchesTheScalarConversionForAll65536Values) {
  std::vector<uint16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h) all[h] = static_cast<uint16_t>(h);
  std::vector<float> row(all.size());
  DequantizeRow(GgmlType::kF16, all.data(), row.data(), static_cast<int64_t>(all.size()));
  for (uint32_t h = 0; h < 65536; ++h) {
    ASSERT_EQ(std::bit_cast<uint32_t>(row[h]), std::bit_cast<uint32_t>(Fp16ToFloat(static_cast<uint16_t>(h))))
        << std::hex << h;
  }
}

TEST(Fp16Test, FromFloatRoundsToNearestEvenIncludingSubnormalsAndOverflow) {
  std::vector<float> inputs;
  for (uint32_t h = 0; h < 0x7C00; ++h) {  // every finite half, the midpoint above it and its neighbours
    const float v = static_cast<float>(RefHalf(static_cast<uint16_t>(h)));
    const float next = h + 1 == 0x7C00 ? 65536.0f : static_cast<float>(RefHalf(static_cast<uint16_t>(h + 1)));
    const float mid = static_cast<float>((static_cast<double>(v) + next) / 2);  // exact: 12 significant bits
    for (float x : {v, mid, std::nextafter(mid, 0.0f), std::nextafter(mid, kFloatMaxF), std::nextafter(v, 0.0f)}) {
      inputs.push_back(x);
      inputs.push_back(-x);
    }
  }
  for (float x : {0.0f, -0.0f, 1e-30f, std::numeric_limits<float>::denorm_min(), std::ldexp(1.0f, -25),
                  std::nextafter(std::ldexp(1.0f, -25), 1.0f), 65504.0f, 65519.996f, 65520.0f, 1e10f, kFloatMaxF,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    inputs.push_back(x);
  }
  std::mt19937 rng(1);
  for (float x : RandomFloats(rng, 200000)) inputs.push_back(x);

  for (float x : inputs) {
    ASSERT_EQ(FloatToFp16(x), RefFloatToHalf(x)) << std::hexfloat << x;
  }
}

TEST(Fp16Test, FromFloatKeepsNaNQuietAndSigned) {
  for (uint32_t bits : {0x7FC00000u, 0x7F800001u, 0xFFC00000u, 0xFFFFFFFFu, 0x7F802000u}) {
    const uint16_t h = FloatToFp16(std::bit_cast<float>(bits));
    EXPECT_EQ(h & 0x7C00, 0x7C00) << std::hex << bits;
    EXPECT_NE(h & 0x03FF, 0) << "must stay NaN, not become infinity: " << std::hex << bits;
    EXPECT_NE(h & 0x0200, 0) << "quiet bit: " << std::hex << bits;
    EXPECT_EQ((h & 0x8000) != 0, (bits >> 31) != 0);
  }
}

TEST(Fp16Test, RoundTripIsIdentityForEveryNonNaNHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    if (std::isnan(RefHalf(static_cast<uint16_t>(h)))) continue;
    ASSERT_EQ(FloatToFp16(Fp16ToFloat(static_cast<uint16_t>(h))), h) << std::hex << h;
  }
}

// --- bf16 --------------------------------------------------------------------------

TEST(Bf16Test, ToFloatMatchesReferenceForAll65536Values) {
  for (uint32_t b = 0; b < 65536; ++b) {
    const float got = Bf16ToFloat(static_cast<uint16_t>(b));
    const double want = RefBf16(static_cast<uint16_t>(b));
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << std::hex << b;
      ASSERT_EQ(std::bit_cast<uint32_t>(got), b << 16) << std::hex << b;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << std::hex << b;
      ASSERT_EQ(std::signbit(got), (b & 0x8000) != 0) << std::hex << b;
    }
  }
}

TEST(Bf16Test, FromFloatRoundsToNearestEven) {
  std::vector<float> inputs;
  for (uint32_t b = 0; b < 0x7F80; b += 1) {  // every finite bf16, midpoints and neighbours
    const uint32_t base = b << 16;
    for (uint32_t low : {0u, 0x7FFFu, 0x8000u, 0x8001u, 0xFFFFu}) {
      inputs.push_back(std::bit_cast<float>(base | low));
      inputs.push_back(std::bit_cast<float>(base | low | 0x80000000u));
    }
  }
  inputs.push_back(std::numeric_limits<float>::infinity());
  inputs.push_back(-std::numeric_limits<float>::infinity());
  std::mt19937 rng(2);
  for (float x : RandomFloats(rng, 200000)) inputs.push_back(x);
  for (float x : inputs) {
    ASSERT_EQ(FloatToBf16(x), RefFloatToBf16(x)) << std::hexfloat << x;
  }
  EXPECT_EQ(FloatToBf16(kFloatMaxF), 0x7F80) << "rounds up past the largest bf16 to infinity";
}

TEST(Bf16Test, FromFloatKeepsNaNQuietAndSigned) {
  for (uint32_t bits : {0x7F800001u, 0x7FC00000u, 0xFF800001u, 0x7F80FFFFu, 0xFFFFFFFFu}) {
    const uint16_t b = FloatToBf16(std::bit_cast<float>(bits));
    EXPECT_TRUE(std::isnan(Bf16ToFloat(b))) << std::hex << bits;
    EXPECT_NE(b & 0x40, 0) << "quiet bit: " << std::hex << bits;
    EXPECT_EQ((b & 0x8000) != 0, (bits >> 31) != 0);
  }
}

// --- Type table --------------------------------------------------------------------

TEST(GgmlTypeTest, TraitsMatchTheSpecTable) {
  struct Row {
    uint32_t id;
    const char* name;
    int64_t block_elems, block_bytes;
  };
  for (const Row& r : {Row{0, "F32", 1, 4}, Row{1, "F16", 1, 2}, Row{8, "Q8_0", 32, 34}, Row{30, "BF16", 1, 2},
                       Row{39, "MXFP4", 32, 17}}) {
    const auto t = GetTypeTraits(r.id);
    ASSERT_TRUE(t.has_value()) << r.id;
    EXPECT_STREQ(t->name, r.name);
    EXPECT_EQ(t->block_elems, r.block_elems);
    EXPECT_EQ(t->block_bytes, r.block_bytes);
    EXPECT_STREQ(GgmlTypeName(r.id), r.name);
  }
  for (uint32_t id : {2u, 3u, 4u, 9u, 31u, 36u, 40u, 43u, 999u, 0xFFFFFFFFu}) EXPECT_FALSE(GetTypeTraits(id)) << id;
  EXPECT_STREQ(GgmlTypeName(2), "Q4_0");
  EXPECT_STREQ(GgmlTypeName(12), "Q4_K");
  EXPECT_STREQ(GgmlTypeName(35), "TQ2_0");
  EXPECT_STREQ(GgmlTypeName(40), "NVFP4");
  EXPECT_STREQ(GgmlTypeName(4), "unknown");   // removed Q4_2
  EXPECT_STREQ(GgmlTypeName(33), "unknown");  // removed repacked type
  EXPECT_STREQ(GgmlTypeName(43), "unknown");
  EXPECT_STREQ(GgmlTypeName(0xFFFFFFFFu), "unknown");
  // Sizes derived in spec §4.
  EXPECT_EQ(RowBytes(GgmlType::kMXFP4, 2880), 1530);
  EXPECT_EQ(RowBytes(GgmlType::kQ8_0, 2880), 3060);
  EXPECT_EQ(RowBytes(GgmlType::kQ8_0, 4096), 4352);
  EXPECT_EQ(RowBytes(GgmlType::kF32, 2880), 11520);
  EXPECT_EQ(RowBytes(GgmlType::kBF16, 3), 6);
}

// --- Q8_0 ---------------------------------------------------------------------------

TEST(Q8_0Test, DequantizeMatchesReferenceOnRandomBlocks) {
  std::mt19937 rng(3);
  constexpr int kBlocks = 4096;
  std::vector<BlockQ8_0> blocks(kBlocks);
  for (BlockQ8_0& b : blocks) {
    uint16_t d = 0x1F << 10;
    while (((d >> 10) & 0x1F) == 0x1F) d = static_cast<uint16_t>(rng());  // finite scales, subnormals included
    b.d = d;
    for (int8_t& q : b.qs) q = static_cast<int8_t>(rng());
  }
  blocks[0].qs[0] = -128;  // the int8 extreme is decoded as is
  std::vector<float> out(kBlocks * 32);
  DequantizeRow(GgmlType::kQ8_0, blocks.data(), out.data(), kBlocks * 32);
  for (int b = 0; b < kBlocks; ++b) {
    for (int j = 0; j < 32; ++j) {
      ASSERT_TRUE(FloatMatches(out[b * 32 + j], RefHalf(blocks[b].d) * blocks[b].qs[j])) << b << "," << j;
    }
  }
}

TEST(Q8_0Test, QuantizeThenDequantizeStaysWithinHalfAStep) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal;
  for (double magnitude : {1e-4, 1e-2, 1.0, 37.0, 1e3}) {
    std::vector<float> x(32 * 64);
    for (float& v : x) v = static_cast<float>(normal(rng) * magnitude);
    x[5] = 0.0f;
    std::vector<BlockQ8_0> q(64);
    QuantizeRow(GgmlType::kQ8_0, x.data(), q.data(), static_cast<int64_t>(x.size()));
    std::vector<float> y(x.size());
    DequantizeRow(GgmlType::kQ8_0, q.data(), y.data(), static_cast<int64_t>(x.size()));
    for (int b = 0; b < 64; ++b) {
      double amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(static_cast<double>(x[b * 32 + j])));
      const double d = amax / 127;
      const double dh = RefHalf(q[b].d);
      // d rounded to fp16: half an ulp, relative 2^-11 for normal halves, 2^-25 absolute for subnormal ones.
      ASSERT_LE(std::fabs(dh - d), std::max(d * std::ldexp(1.0, -11), std::ldexp(1.0, -25)) * 1.0001);
      // Rounding x/d to an integer errs by at most d/2; the fp16 scale adds |q| * |dh - d|.
      const double bound = d / 2 * 1.0001 + 127 * std::fabs(dh - d);
      for (int j = 0; j < 32; ++j) {
        const double xj = x[b * 32 + j];
        ASSERT_LE(std::fabs(xj - y[b * 32 + j]), bound) << magnitude << " block " << b << " elem " << j;
        if (std::fabs(xj) == amax) {
          ASSERT_EQ(std::abs(q[b].qs[j]), 127);
        }
      }
    }
    EXPECT_EQ(y[5], 0.0f);
  }
}

TEST(Q8_0Test, QuantizeHandlesZeroAndNonFiniteBlocks) {
  std::vector<float> x(64, 0.0f);
  x[32] = 1.0f;
  x[33] = std::numeric_limits<float>::infinity();
  x[34] = -std::numeric_limits<float>::infinity();
  x[35] = std::numeric_limits<float>::quiet_NaN();
  x[36] = -0.25f;
  BlockQ8_0 q[2];
  QuantizeRow(GgmlType::kQ8_0, x.data(), q, 64);
  EXPECT_EQ(q[0].d, 0);
  for (int8_t v : q[0].qs) EXPECT_EQ(v, 0);
  // The finite elements set the scale; infinities saturate, NaN becomes 0.
  EXPECT_EQ(RefHalf(q[1].d), RefHalf(RefFloatToHalf(1.0f / 127.0f)));
  EXPECT_EQ(q[1].qs[0], 127);
  EXPECT_EQ(q[1].qs[1], 127);
  EXPECT_EQ(q[1].qs[2], -127);
  EXPECT_EQ(q[1].qs[3], 0);
  EXPECT_EQ(q[1].qs[4], -32);  // -31.75
}

// --- MXFP4 -------------------------------------------------------------------------

TEST(Mxfp4Test, HalfScaleIsExactForEveryExponentByte) {
  for (int e = 0; e < 256; ++e) {
    ASSERT_EQ(static_cast<double>(E8m0ToFloatHalf(static_cast<uint8_t>(e))), std::ldexp(1.0, e - 128)) << e;
  }
}

TEST(Mxfp4Test, DequantizeMatchesSpecTextForEveryExponentExcept0xFF) {
  std::mt19937 rng(5);
  constexpr int kBlocksPerExponent = 8;
  std::vector<BlockMxfp4> blocks(255 * kBlocksPerExponent);
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i].e = static_cast<uint8_t>(i / kBlocksPerExponent);
    for (uint8_t& b : blocks[i].qs) b = static_cast<uint8_t>(rng());
  }
  // Make sure every code appears in both nibble positions at least once.
  for (int j = 0; j < 16; ++j) blocks[0].qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> out(blocks.size() * 32);
  DequantizeRow(GgmlType::kMXFP4, blocks.data(), out.data(), static_cast<int64_t>(out.size()));
  for (size_t i = 0; i < blocks.size(); ++i) {
    uint8_t raw[17];
    std::memcpy(raw, &blocks[i], 17);
    const std::vector<double> want = RefDecodeMxfp4(raw);
    for (int j = 0; j < 32; ++j) {
      ASSERT_TRUE(FloatMatches(out[i * 32 + j], want[j])) << "e=" << int{blocks[i].e} << " elem " << j;
    }
  }
}

// floor(log2(a)) exactly, for finite a > 0.
int FloorLog2(double a) {
  int exp = 0;
  std::frexp(a, &exp);  // a = m * 2^exp, m in [0.5, 1)
  return exp - 1;
}

// Checks one quantized block against the spec: the shared exponent is
// floor(log2(amax)) - 2 + 127 (clamped to the byte range), and every element is
// a nearest value of the form E2M1 * 2^(e-127), ties toward the smaller magnitude.
void ExpectMxfp4BlockIsNearest(const float* x, const BlockMxfp4& q, const float* y) {
  double amax = 0;
  for (int j = 0; j < 32; ++j) {
    if (std::isfinite(x[j])) amax = std::max(amax, std::fabs(static_cast<double>(x[j])));
  }
  const int want_e = amax == 0 ? 0 : std::clamp(FloorLog2(amax) - 2 + 127, 0, 254);
  ASSERT_EQ(int{q.e}, want_e) << "amax " << std::hexfloat << amax;
  const double scale = std::ldexp(1.0, want_e - 127);
  for (int j = 0; j < 32; ++j) {
    const double xj = std::clamp(static_cast<double>(x[j]), -6 * scale, 6 * scale);  // infinities saturate
    const double yj = y[j];
    const double err = std::fabs(xj - yj);
    for (int c = 0; c < 16; ++c) {
      const double cand = RefE2M1(c) * scale;
      const double cerr = std::fabs(xj - cand);
      ASSERT_LE(err, cerr) << "elem " << j << " x=" << x[j] << " got " << yj << ", " << cand << " is nearer";
      if (err == cerr) {
        ASSERT_LE(std::fabs(yj), std::fabs(cand)) << "tie must go toward the smaller magnitude";
      }
    }
  }
}

TEST(Mxfp4Test, QuantizePicksTheSpecExponentAndNearestValues) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal;
  std::vector<float> x;
  for (double magnitude : {1e-30, 1e-3, 0.1, 1.0, 3.0, 1e4, 1e30}) {
    for (int b = 0; b < 64; ++b) {
      for (int j = 0; j < 32; ++j) x.push_back(static_cast<float>(normal(rng) * magnitude));
    }
  }
  // Hand-made blocks: amax just below a power of two (where log2f rounds up),
  // amax exactly a power of two, every tie of the table, the largest float,
  // tiny subnormal amax, and an all-zero block.
  auto add_block = [&](std::vector<float> v) {
    v.resize(32, 0.0f);
    x.insert(x.end(), v.begin(), v.end());
  };
  add_block({std::nextafter(1048576.0f, 0.0f), 1.0f, -3.0f});
  add_block({std::nextafter(2.0f, 0.0f), 0.5f});
  add_block({16.0f, -16.0f, 3.0f});
  // amax = 4 -> e = 127, scale 1: ties at 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5 and their negatives.
  add_block({4.0f, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, -0.25f, -0.75f, -1.25f, -1.75f, -2.5f, -3.5f, 0.1f, -0.1f});
  add_block({7.99f, 5.0f, -5.0f, 7.0f});  // amax in [4, 8): scale 2, values beyond 6*scale saturate
  add_block({kFloatMaxF, -kFloatMaxF, 1e38f});
  add_block({std::numeric_limits<float>::denorm_min(), 1e-40f, -3e-39f});
  add_block({std::ldexp(1.0f, -125), std::ldexp(1.0f, -126)});
  add_block({});
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<BlockMxfp4> q(static_cast<size_t>(n / 32));
  QuantizeRow(GgmlType::kMXFP4, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kMXFP4, q.data(), y.data(), n);
  for (size_t b = 0; b < q.size(); ++b) {
    SCOPED_TRACE(::testing::Message() << "block " << b);
    ExpectMxfp4BlockIsNearest(&x[b * 32], q[b], &y[b * 32]);
  }
  const BlockMxfp4& below_pow2 = q[q.size() - 9];
  EXPECT_EQ(below_pow2.e, 19 - 2 + 127) << "floor(log2(2^20 - 1/16)) is 19";
  const BlockMxfp4& zero = q.back();
  EXPECT_EQ(zero.e, 0);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[y.size() - 32 + j], 0.0f);
}

TEST(Mxfp4Test, QuantizeSaturatesInfinitiesAndZeroesNaN) {
  std::vector<float> x(32, 0.0f);
  x[0] = 1.0f;
  x[1] = std::numeric_limits<float>::infinity();
  x[2] = -std::numeric_limits<float>::infinity();
  x[3] = std::numeric_limits<float>::quiet_NaN();
  BlockMxfp4 q;
  QuantizeRow(GgmlType::kMXFP4, x.data(), &q, 32);
  float y[32];
  DequantizeRow(GgmlType::kMXFP4, &q, y, 32);
  EXPECT_EQ(q.e, 125) << "the finite elements set the scale";
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.5f);  // 6 * 2^(125-127)
  EXPECT_EQ(y[2], -1.5f);
  EXPECT_EQ(y[3], 0.0f);
}

// OpenAI checkpoint layout (spec §2.2): byte b of a block holds element 2b in
// the low nibble and element 2b+1 in the high nibble; scale applied by ldexp.
std::vector<double> DecodeOpenAi(const uint8_t blocks16[16], uint8_t scale) {
  std::vector<double> out(32);
  for (int b = 0; b < 16; ++b) {
    out[2 * b] = std::ldexp(RefE2M1(blocks16[b] & 0x0F), scale - 127);
    out[2 * b + 1] = std::ldexp(RefE2M1(blocks16[b] >> 4), scale - 127);
  }
  return out;
}

// Converter repack (spec §2.3), stated on codes: new byte j = code[j] | code[j+16] << 4.
void RepackByCodes(const uint8_t openai[16], uint8_t ggml[16]) {
  uint8_t code[32];
  for (int b = 0; b < 16; ++b) {
    code[2 * b] = openai[b] & 0x0F;
    code[2 * b + 1] = openai[b] >> 4;
  }
  for (int j = 0; j < 16; ++j) ggml[j] = static_cast<uint8_t>(code[j] | (code[j + 16] << 4));
}

// The same repack as Ollama states it on bytes: a = byte j, b = byte j+8,
// out[2j] = lo(a) | lo(b) << 4, out[2j+1] = hi(a) | hi(b) << 4.
void RepackByBytes(const uint8_t in[16], uint8_t out[16]) {
  for (int j = 0; j < 8; ++j) {
    const uint8_t a = in[j], b = in[j + 8];
    out[2 * j] = static_cast<uint8_t>((a & 0x0F) | ((b & 0x0F) << 4));
    out[2 * j + 1] = static_cast<uint8_t>((a >> 4) | (b & 0xF0));
  }
}

TEST(Mxfp4Test, GgmlNibbleOrderDecodesOpenAiBlocksAfterTheConverterPermutation) {
  std::mt19937 rng(7);
  int differs_without_repack = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    uint8_t openai[16];
    for (uint8_t& b : openai) b = static_cast<uint8_t>(rng());
    const uint8_t scale = static_cast<uint8_t>(100 + rng() % 50);

    BlockMxfp4 block;
    block.e = scale;  // scale byte copied unchanged
    RepackByCodes(openai, block.qs);
    uint8_t by_bytes[16];
    RepackByBytes(openai, by_bytes);
    ASSERT_EQ(std::memcmp(block.qs, by_bytes, 16), 0) << "the two statements of the permutation disagree";

    float y[32];
    DequantizeRow(GgmlType::kMXFP4, &block, y, 32);
    const std::vector<double> want = DecodeOpenAi(openai, scale);
    for (int i = 0; i < 32; ++i) ASSERT_EQ(static_cast<double>(y[i]), want[i]) << "element " << i;

    // Negative control: the OpenAI bytes read as ggml bytes decode differently.
    BlockMxfp4 raw;
    raw.e = scale;
    std::memcpy(raw.qs, openai, 16);
    float z[32];
    DequantizeRow(GgmlType::kMXFP4, &raw, z, 32);
    for (int i = 0; i < 32; ++i) {
      if (static_cast<double>(z[i]) != want[i]) {
        ++differs_without_repack;
        break;
      }
    }
  }
  EXPECT_GT(differs_without_repack, 1900);
}

// --- Row conversions for the plain types -------------------------------------------

TEST(PlainTypesTest, RowConversionsMatchTheScalarFunctions) {
  std::mt19937 rng(8);
  const std::vector<float> x = RandomFloats(rng, 1000);
  std::vector<uint16_t> h(x.size()), b(x.size());
  std::vector<float> f(x.size()), y(x.size());
  QuantizeRow(GgmlType::kF16, x.data(), h.data(), 1000);
  QuantizeRow(GgmlType::kBF16, x.data(), b.data(), 1000);
  QuantizeRow(GgmlType::kF32, x.data(), f.data(), 1000);
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], RefFloatToHalf(x[i]));
    ASSERT_EQ(b[i], RefFloatToBf16(x[i]));
    ASSERT_EQ(std::bit_cast<uint32_t>(f[i]), std::bit_cast<uint32_t>(x[i]));
  }
  DequantizeRow(GgmlType::kF16, h.data(), y.data(), 1000);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(FloatMatches(y[i], RefHalf(h[i])));
  DequantizeRow(GgmlType::kBF16, b.data(), y.data(), 1000);
  for (size_t i = 0; i < x.size(); ++i) ASSERT_TRUE(FloatMatches(y[i], RefBf16(b[i])));
}

// --- Q5_0, Q5_1, Q5_K ---------------------------------------------------------------
//
// References written from the layouts in docs/quant-formats.md (after
// ggml-common.h block_q5_0 / block_q5_1 / block_q5_K and ggml-quants.c
// dequantize_row_q5_0 / _q5_1 / _q5_K), reading every field bit by bit.

// `count` bits of a block from bit `first`; bit i is bit i % 8 of byte i / 8.
uint32_t BitsAt(const uint8_t* block, int first, int count) {
  uint32_t v = 0;
  for (int i = 0; i < count; ++i) v |= ((block[(first + i) / 8] >> ((first + i) % 8)) & 1u) << i;
  return v;
}

// Q5_0, 22 bytes: fp16 d at byte 0, 32 top bits at bytes 2-5 (bit j of that
// little-endian word is element j's bit 4), 16 nibble bytes at byte 6
// (element j < 16: low nibble of byte 6 + j; j >= 16: high nibble of byte
// 6 + j - 16). Value d * (q - 16).
// Q5_1, 24 bytes: the same after fp16 d and fp16 m (bytes 0-3). Value d * q + m.
struct RefQ5 {
  double d = 0, m = 0;
  int q[32];
};
RefQ5 ParseQ5(const uint8_t* b, bool with_min) {
  RefQ5 r;
  r.d = RefHalf(static_cast<uint16_t>(BitsAt(b, 0, 16)));
  const int qh_byte = with_min ? 4 : 2;
  if (with_min) r.m = RefHalf(static_cast<uint16_t>(BitsAt(b, 16, 16)));
  for (int j = 0; j < 32; ++j) {
    const uint32_t low = BitsAt(b, 8 * (qh_byte + 4 + j % 16) + 4 * (j / 16), 4);
    r.q[j] = static_cast<int>(low | (BitsAt(b, 8 * qh_byte + j, 1) << 4));
  }
  return r;
}
double RefQ5_0Value(const RefQ5& r, int j) { return r.d * (r.q[j] - 16); }
double RefQ5_1Value(const RefQ5& r, int j) { return r.d * r.q[j] + r.m; }

// Q5_K, 176 bytes: fp16 d at byte 0, fp16 dmin at byte 2, Q4_K's 12 bytes of
// 6-bit scales and mins at byte 4 (sub-block j < 4: scale bits 0-5 of byte
// j, min bits 0-5 of byte j + 4; j >= 4: scale bits 0-3 of byte j + 4 and
// bits 6-7 of byte j - 4 above them, min bits 4-7 of byte j + 4 and bits 6-7
// of byte j above them), 32 top-bit bytes at byte 16, 128 nibble bytes at
// byte 48. Element e = 64g + r: low nibble (r < 32) or high nibble of byte
// 48 + 32g + r % 32, top bit at bit 2g + r / 32 of byte 16 + r % 32. Value
// d * scale_{e/32} * q - dmin * min_{e/32}.
struct RefQ5K {
  double d, dmin;
  int sc[8], m[8];
  int q[256];
  double Value(int e) const { return d * sc[e / 32] * q[e] - dmin * m[e / 32]; }
};
RefQ5K ParseQ5K(const uint8_t* b) {
  RefQ5K r;
  r.d = RefHalf(static_cast<uint16_t>(BitsAt(b, 0, 16)));
  r.dmin = RefHalf(static_cast<uint16_t>(BitsAt(b, 16, 16)));
  auto byte_bit = [](int k) { return 32 + 8 * k; };
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      r.sc[j] = static_cast<int>(BitsAt(b, byte_bit(j), 6));
      r.m[j] = static_cast<int>(BitsAt(b, byte_bit(j + 4), 6));
    } else {
      r.sc[j] = static_cast<int>(BitsAt(b, byte_bit(j + 4), 4) + (BitsAt(b, byte_bit(j - 4) + 6, 2) << 4));
      r.m[j] = static_cast<int>(BitsAt(b, byte_bit(j + 4) + 4, 4) + (BitsAt(b, byte_bit(j) + 6, 2) << 4));
    }
  }
  for (int e = 0; e < 256; ++e) {
    const int g = e / 64, rr = e % 64;
    const uint32_t low = BitsAt(b, 8 * (48 + 32 * g + rr % 32) + 4 * (rr / 32), 4);
    const uint32_t top = BitsAt(b, 8 * (16 + rr % 32) + 2 * g + rr / 32, 1);
    r.q[e] = static_cast<int>(low | (top << 4));
  }
  return r;
}

// Random blocks with finite fp16 scales (subnormals, zero and the largest
// included) at the given byte offsets, and one block with every other bit set.
std::vector<uint8_t> RandomQ5Blocks(std::mt19937& rng, int count, int bytes, std::initializer_list<int> half_at) {
  std::vector<uint8_t> out(static_cast<size_t>(count) * bytes);
  for (uint8_t& v : out) v = static_cast<uint8_t>(rng());
  for (int b = 0; b < count; ++b) {
    for (int at : half_at) {
      uint16_t h = 0x7C00;
      switch (rng() % 6) {
        case 0: h = 0x7BFF; break;
        case 1: h = 0xFBFF; break;
        case 2: h = static_cast<uint16_t>(rng() % 0x400 | (rng() % 2 ? 0x8000 : 0)); break;
        default:
          while ((h & 0x7C00) == 0x7C00) h = static_cast<uint16_t>(rng());
      }
      out[b * bytes + at] = static_cast<uint8_t>(h);
      out[b * bytes + at + 1] = static_cast<uint8_t>(h >> 8);
    }
  }
  std::fill(out.begin(), out.begin() + bytes, 0xFF);  // every quant bit, scale and min at its maximum
  for (int at : half_at) out[at] = 0xFF, out[at + 1] = 0x7B;
  return out;
}

TEST(Q5TypesTest, TraitsFollowTheBlockLayouts) {
  struct Row {
    uint32_t id;
    GgmlType type;
    const char* name;
    int64_t block_elems, block_bytes;
  };
  for (const Row& r : {Row{6, GgmlType::kQ5_0, "Q5_0", 32, 2 + 4 + 16},
                       Row{7, GgmlType::kQ5_1, "Q5_1", 32, 2 + 2 + 4 + 16},
                       Row{13, GgmlType::kQ5_K, "Q5_K", 256, 2 + 2 + 12 + 32 + 128}}) {
    EXPECT_EQ(static_cast<uint32_t>(r.type), r.id);
    const auto t = GetTypeTraits(r.id);
    ASSERT_TRUE(t.has_value()) << r.id;
    EXPECT_STREQ(t->name, r.name);
    EXPECT_STREQ(GgmlTypeName(r.id), r.name);
    EXPECT_EQ(t->block_elems, r.block_elems);
    EXPECT_EQ(t->block_bytes, r.block_bytes);
  }
  // Qwen2.5-0.5B's 896-wide rows (28 blocks), Phi-3-mini's 3072 (12 super-blocks).
  EXPECT_EQ(RowBytes(GgmlType::kQ5_0, 896), 28 * 22);
  EXPECT_EQ(RowBytes(GgmlType::kQ5_1, 896), 28 * 24);
  EXPECT_EQ(RowBytes(GgmlType::kQ5_K, 3072), 12 * 176);
}

TEST(Q5TypesTest, DequantizeMatchesTheBitLevelReferenceOnRandomBlocks) {
  std::mt19937 rng(21);
  constexpr int kBlocks = 4000;
  {
    const std::vector<uint8_t> bytes = RandomQ5Blocks(rng, kBlocks, 22, {0});
    std::vector<float> out(kBlocks * 32);
    DequantizeRow(GgmlType::kQ5_0, bytes.data(), out.data(), kBlocks * 32);
    for (int b = 0; b < kBlocks; ++b) {
      const RefQ5 r = ParseQ5(&bytes[b * 22], false);
      for (int j = 0; j < 32; ++j) {
        // d * (q - 16) is exact in float.
        ASSERT_EQ(static_cast<double>(out[b * 32 + j]), RefQ5_0Value(r, j)) << "Q5_0 block " << b << " elem " << j;
      }
    }
    // Every bit set: q 31, d 65504: 65504 * 15.
    EXPECT_EQ(out[0], 65504.0f * 15);
  }
  {
    const std::vector<uint8_t> bytes = RandomQ5Blocks(rng, kBlocks, 24, {0, 2});
    std::vector<float> out(kBlocks * 32);
    DequantizeRow(GgmlType::kQ5_1, bytes.data(), out.data(), kBlocks * 32);
    for (int b = 0; b < kBlocks; ++b) {
      const RefQ5 r = ParseQ5(&bytes[b * 24], true);
      for (int j = 0; j < 32; ++j) {
        // d * q + m is exact in double; float rounds it once.
        ASSERT_EQ(out[b * 32 + j], static_cast<float>(RefQ5_1Value(r, j))) << "Q5_1 block " << b << " elem " << j;
      }
    }
    EXPECT_EQ(out[0], 65504.0f * 32);  // d = m = 65504, q 31
  }
  {
    const std::vector<uint8_t> bytes = RandomQ5Blocks(rng, kBlocks / 8, 176, {0, 2});
    std::vector<float> out(kBlocks / 8 * 256);
    DequantizeRow(GgmlType::kQ5_K, bytes.data(), out.data(), kBlocks / 8 * 256);
    for (int b = 0; b < kBlocks / 8; ++b) {
      const RefQ5K r = ParseQ5K(&bytes[b * 176]);
      for (int e = 0; e < 256; ++e) {
        ASSERT_EQ(out[b * 256 + e], static_cast<float>(r.Value(e))) << "Q5_K block " << b << " elem " << e;
      }
    }
    EXPECT_EQ(out[0], 65504.0f * 63 * 30);  // scale 63, min 63, q 31, d = dmin = 65504
  }
}

// Every one of the 32 codes, with a negative d (ggml's quantizer stores d =
// max / -16, so files carry both signs): element j is written as code j by
// hand (low nibble and qh bit placed per the layout), decoded to d * (j - 16).
TEST(Q5TypesTest, Q5_0EveryCodeAndBothSignsOfD) {
  for (const uint16_t d_bits : {static_cast<uint16_t>(0xB800), static_cast<uint16_t>(0x3C00)}) {  // -0.5, 1
    const double d = RefHalf(d_bits);
    uint8_t b[22] = {};
    b[0] = static_cast<uint8_t>(d_bits), b[1] = static_cast<uint8_t>(d_bits >> 8);
    for (int j = 0; j < 32; ++j) {
      const int code = j;
      if (code & 16) b[2 + j / 8] |= static_cast<uint8_t>(1 << (j % 8));
      b[6 + j % 16] |= static_cast<uint8_t>((code & 15) << (j < 16 ? 0 : 4));
    }
    // The top bits of elements 16..31 (codes 16..31) are the high half of qh.
    EXPECT_EQ(b[2], 0x00);
    EXPECT_EQ(b[4], 0xFF);
    float out[32];
    DequantizeRow(GgmlType::kQ5_0, b, out, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<double>(out[j]), d * (j - 16)) << "code " << j;
    // Reversed codes: element j holds 31 - j.
    std::memset(b + 2, 0, 20);
    for (int j = 0; j < 32; ++j) {
      const int code = 31 - j;
      if (code & 16) b[2 + j / 8] |= static_cast<uint8_t>(1 << (j % 8));
      b[6 + j % 16] |= static_cast<uint8_t>((code & 15) << (j < 16 ? 0 : 4));
    }
    DequantizeRow(GgmlType::kQ5_0, b, out, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<double>(out[j]), d * (15 - j)) << "element " << j;
  }
}

// Q5_1: every code, with a negative and a positive min; the min is added.
TEST(Q5TypesTest, Q5_1EveryCodeWithTheMinAdded) {
  for (const uint16_t m_bits : {static_cast<uint16_t>(0xC300), static_cast<uint16_t>(0x3E00)}) {  // -3.5, 1.5
    uint8_t b[24] = {};
    b[0] = 0x00, b[1] = 0x34;  // d = 0.25
    b[2] = static_cast<uint8_t>(m_bits), b[3] = static_cast<uint8_t>(m_bits >> 8);
    for (int j = 0; j < 32; ++j) {
      if (j & 16) b[4 + j / 8] |= static_cast<uint8_t>(1 << (j % 8));
      b[8 + j % 16] |= static_cast<uint8_t>((j & 15) << (j < 16 ? 0 : 4));
    }
    float out[32];
    DequantizeRow(GgmlType::kQ5_1, b, out, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(static_cast<double>(out[j]), 0.25 * j + RefHalf(m_bits)) << "code " << j;
  }
}

// Q5_K: sub-block scales and mins packed by hand (as in Q4_K), every code in
// every sub-block (element 32j + i holds code (i + 7j) % 32, so each code
// sits in both nibble halves and in every qh bit position), values worked
// out from d * sc * q - dmin * m with d = 1, dmin = 0.5.
TEST(Q5TypesTest, Q5_KEveryCodeInEverySubBlock) {
  uint8_t b[176] = {};
  b[0] = 0x00, b[1] = 0x3C;  // d = 1
  b[2] = 0x00, b[3] = 0x38;  // dmin = 0.5
  // sc = {1, 2, 3, 4, 50, 63, 16, 33}, m = {0, 1, 2, 63, 33, 5, 48, 17}.
  const uint8_t scales[12] = {0xC1, 0xC2, 0x43, 0x84, 0x80, 0x01, 0xC2, 0x7F, 0x12, 0x5F, 0x00, 0x11};
  std::memcpy(b + 4, scales, 12);
  const int sc[8] = {1, 2, 3, 4, 50, 63, 16, 33}, m[8] = {0, 1, 2, 63, 33, 5, 48, 17};
  std::vector<double> want(256);
  for (int e = 0; e < 256; ++e) {
    const int j = e / 32, code = (e % 32 + 7 * j) % 32;
    const int g = e / 64, r = e % 64;
    b[48 + 32 * g + r % 32] |= static_cast<uint8_t>((code & 15) << (r < 32 ? 0 : 4));
    if (code & 16) b[16 + r % 32] |= static_cast<uint8_t>(1 << (2 * g + r / 32));
    want[e] = 1.0 * sc[j] * code - 0.5 * m[j];
  }
  const RefQ5K ref = ParseQ5K(b);
  for (int j = 0; j < 8; ++j) {
    EXPECT_EQ(ref.sc[j], sc[j]) << "reference self-check";
    EXPECT_EQ(ref.m[j], m[j]) << "reference self-check";
  }
  float out[256];
  DequantizeRow(GgmlType::kQ5_K, b, out, 256);
  for (int e = 0; e < 256; ++e) {
    EXPECT_EQ(ref.Value(e), want[e]) << "reference self-check, element " << e;
    EXPECT_EQ(static_cast<double>(out[e]), want[e]) << "element " << e;
  }
  EXPECT_EQ(out[31 + 32 * 5], 63 * ((31 + 35) % 32) - 2.5);  // sub-block 5's last element: code 2
}

// Blocks of 32 over many magnitudes and shapes (one-signed, sparse,
// constant, an outlier), and infinities and NaN, for the round trips.
std::vector<float> Q5RoundTripInputs(int block) {
  std::mt19937 rng(23);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> x;
  auto add = [&](auto gen) {
    for (int i = 0; i < block; ++i) x.push_back(gen(i));
  };
  for (double mag : {1e-7, 1e-5, 1e-3, 0.02, 1.0, 30.0, 1e3, 3e4}) {
    // Q5_0 and Q5_1 scales reach about 1e6 and their mins -6.5e4 (QuantizeRow):
    // the 30x outlier at 3e4 would clip.
    if (block == 32 && mag > 1e3) continue;
    for (int rep = 0; rep < 4; ++rep) {
      add([&](int) { return static_cast<float>(normal(rng) * mag); });
      add([&](int) { return static_cast<float>(uniform(rng) * mag); });
      add([&](int) { return static_cast<float>(std::fabs(normal(rng)) * mag + mag); });
      add([&](int) { return static_cast<float>(-std::fabs(normal(rng)) * mag); });
      add([&](int i) { return i % 7 == 0 ? static_cast<float>(normal(rng) * mag) : 0.0f; });
      add([&](int i) { return static_cast<float>((i == 17 ? 30.0 : 1.0) * normal(rng) * mag); });
      add([&](int i) { return static_cast<float>(normal(rng) * mag * std::ldexp(1.0, (i / 32) - 4)); });
    }
  }
  add([](int) { return 0.0f; });
  add([](int) { return 0.75f; });
  add([](int) { return -3.0f; });
  return x;
}

TEST(Q5TypesTest, Q5_0QuantizeThenDequantizeStaysWithinHalfAStep) {
  const std::vector<float> x = Q5RoundTripInputs(32);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(RowBytes(GgmlType::kQ5_0, n)));
  QuantizeRow(GgmlType::kQ5_0, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kQ5_0, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const RefQ5 r = ParseQ5(&q[b * 22], false);
    double amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(static_cast<double>(x[b * 32 + j])));
    // d: the fp16 at or just above amax / 15.5 (one fp16 step: 2^-10 relative, 2^-24 absolute).
    ASSERT_GE(r.d * 15.5, amax * (1 - 1e-7)) << "block " << b;
    ASSERT_LE(r.d, amax / 15.5 * (1 + std::ldexp(1.0, -9)) + std::ldexp(1.0, -24)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      ASSERT_EQ(static_cast<double>(y[b * 32 + j]), RefQ5_0Value(r, j));
      ASSERT_LE(std::fabs(x[b * 32 + j] - RefQ5_0Value(r, j)), r.d / 2 * (1 + 1e-6))
          << "block " << b << " elem " << j << " x=" << x[b * 32 + j];
    }
  }
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[n - 96 + j], 0.0f) << "zero block";
}

TEST(Q5TypesTest, Q5_1QuantizeThenDequantizeStaysWithinHalfAStep) {
  const std::vector<float> x = Q5RoundTripInputs(32);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(RowBytes(GgmlType::kQ5_1, n)));
  QuantizeRow(GgmlType::kQ5_1, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kQ5_1, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    const RefQ5 r = ParseQ5(&q[b * 24], true);
    double lo = x[b * 32], hi = x[b * 32];
    for (int j = 0; j < 32; ++j) {
      lo = std::min(lo, static_cast<double>(x[b * 32 + j]));
      hi = std::max(hi, static_cast<double>(x[b * 32 + j]));
    }
    // m at or just below the min; d covers the range from m in 31 steps.
    ASSERT_LE(r.m, lo) << "block " << b;
    ASSERT_GE(r.m, lo - std::fabs(lo) * std::ldexp(1.0, -10) - std::ldexp(1.0, -24)) << "block " << b;
    ASSERT_GE(r.d * 31, (hi - r.m) * (1 - 1e-6)) << "block " << b;
    ASSERT_LE(r.d, (hi - r.m) / 31 * (1 + std::ldexp(1.0, -9)) + std::ldexp(1.0, -24)) << "block " << b;
    for (int j = 0; j < 32; ++j) {
      const double v = RefQ5_1Value(r, j);
      ASSERT_EQ(y[b * 32 + j], static_cast<float>(v));
      const double slack = 1e-6 * std::max(std::fabs(lo), std::fabs(hi));
      ASSERT_LE(std::fabs(x[b * 32 + j] - v), r.d / 2 + slack) << "block " << b << " elem " << j;
    }
  }
  // A constant block decodes to its value: m = x (0.75 and -3 are fp16 values), q = 0.
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[n - 64 + j], 0.75f);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[n - 32 + j], -3.0f);
}

TEST(Q5TypesTest, Q5_KQuantizeThenDequantizeStaysWithinHalfAStep) {
  const std::vector<float> x = Q5RoundTripInputs(256);
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(RowBytes(GgmlType::kQ5_K, n)));
  QuantizeRow(GgmlType::kQ5_K, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  DequantizeRow(GgmlType::kQ5_K, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 256; ++b) {
    const RefQ5K r = ParseQ5K(&q[b * 176]);
    for (int j = 0; j < 8; ++j) {
      double lo = 0, hi = 0;
      for (int i = 0; i < 32; ++i) {
        lo = std::min(lo, static_cast<double>(x[b * 256 + 32 * j + i]));
        hi = std::max(hi, static_cast<double>(x[b * 256 + 32 * j + i]));
      }
      const double step = r.d * r.sc[j], off = r.dmin * r.m[j];
      // The sub-block's range [-off, 31 step - off] covers [lo, hi].
      ASSERT_LE(-off, lo + 1e-6 * std::fabs(lo)) << "block " << b << " sub-block " << j;
      ASSERT_GE(31 * step - off, hi - 1e-6 * std::fabs(hi)) << "block " << b << " sub-block " << j;
      // Rounding the scales up costs at most one unit of d and dmin.
      ASSERT_LE(step, (hi - lo + r.dmin) / 31 + r.d * (1 + 1e-6) + 1e-30) << "block " << b << " sub-block " << j;
      for (int i = 0; i < 32; ++i) {
        const int e = 32 * j + i;
        ASSERT_EQ(y[b * 256 + e], static_cast<float>(r.Value(e)));
        const double slack = 1e-6 * std::max({std::fabs(static_cast<double>(x[b * 256 + e])), off, 31 * step});
        ASSERT_LE(std::fabs(x[b * 256 + e] - r.Value(e)), step / 2 + slack) << "block " << b << " elem " << e;
      }
    }
  }
}

// Non-finite inputs: infinities saturate to the block's extremes, NaN
// encodes as the value nearest 0, and finite neighbours keep their scale.
TEST(Q5TypesTest, QuantizeSaturatesInfinitiesAndZeroesNaN) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> x(256);
  for (int i = 0; i < 256; ++i) x[i] = static_cast<float>((i % 32) - 16) / 8.0f;  // -2 .. 1.875
  x[3] = inf, x[4] = -inf, x[5] = nan;
  for (GgmlType type : {GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ5_K}) {
    SCOPED_TRACE(GgmlTypeName(static_cast<uint32_t>(type)));
    std::vector<uint8_t> q(static_cast<size_t>(RowBytes(type, 256)));
    QuantizeRow(type, x.data(), q.data(), 256);
    std::vector<float> y(256);
    DequantizeRow(type, q.data(), y.data(), 256);
    const float top = *std::max_element(y.begin(), y.begin() + 32);
    const float bottom = *std::min_element(y.begin(), y.begin() + 32);
    EXPECT_EQ(y[3], top);
    EXPECT_EQ(y[4], bottom);
    EXPECT_LE(std::fabs(y[5]), 0.07f) << "NaN: the code nearest 0";
    EXPECT_NEAR(top, 1.875f, 0.07f) << "the scale comes from the finite values";
    EXPECT_NEAR(y[6], x[6], 0.07f);
  }
}

// On Gaussian weights, 5 bits: relative RMS error about 4% for each type
// (Q4_K: 8%, Q6_K: 2%; kquants_test).
TEST(Q5TypesTest, RelativeRmsErrorOnGaussianWeights) {
  std::mt19937 rng(29);
  std::normal_distribution<float> normal;
  std::vector<float> x(256 * 512);
  for (float& v : x) v = normal(rng) * 0.02f;
  for (GgmlType type : {GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ5_K}) {
    std::vector<uint8_t> q(static_cast<size_t>(RowBytes(type, static_cast<int64_t>(x.size()))));
    QuantizeRow(type, x.data(), q.data(), static_cast<int64_t>(x.size()));
    std::vector<float> y(x.size());
    DequantizeRow(type, q.data(), y.data(), static_cast<int64_t>(x.size()));
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      num += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
      den += static_cast<double>(x[i]) * x[i];
    }
    const double rel = std::sqrt(num / den);
    std::printf("%s: relative RMS error %.2f%%\n", GgmlTypeName(static_cast<uint32_t>(type)), 100 * rel);
    EXPECT_GT(rel, 0.02) << "more than 5 bits' worth: the test would not see a coarser quantizer";
    EXPECT_LT(rel, 0.05);
  }
}

}  // namespace
}  // namespace ossgate::gguf
