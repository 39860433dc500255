// The arithmetic of token sampling, written once for the host sampler
// (sampler.cc) and the GPU sampler (kernels/sampling.cu), so that both draw
// the same token for the same logits, parameters, seed and step, bit for bit.
//
// Every floating-point operation here is a single IEEE-754 binary32
// operation in round-to-nearest-even: on the device through the _rn
// intrinsics (which nvcc never fuses into FMAs), on the host through plain
// operators in a translation unit built with -ffp-contract=off, and fused
// multiply-adds only where written (Fma). The transcendental functions are
// polynomials built from those operations, so they give the same bits on
// both sides (the libm and CUDA versions differ in the last place).
//
// The algorithm (sampler.h states the contract):
//   - greedy: the first token in candidate order (logit descending, id
//     ascending, -0 = +0);
//   - temperature T > 0: the Gumbel-max trick. Token i scores
//     l_i / T + G_i with G_i = -log(E_i), E_i = -log(1 - V_i) an Exp(1)
//     variate from the Philox4x32-10 word of (seed, step, i); the highest
//     score among the kept tokens wins. This is an exact sample of
//     softmax(l / T) restricted to the kept set, found in one pass over the
//     logits without normalising or sorting them;
//   - the kept set is a prefix of the candidate order: top-k keeps the first
//     k; top-p keeps the shortest prefix of those whose integer masses
//     Mass(z_i), z_i = (l_i - max) * (1/T), reach ceil(top_p * total); min-p
//     keeps z_i >= Log(min_p). Integer masses make the cut independent of
//     the order in which a parallel reduction adds them.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define OSSGATE_HD __host__ __device__ __forceinline__
#else
#define OSSGATE_HD inline
#endif

namespace ossgate::model::sampling {

// ---- single-rounding float operations ----

OSSGATE_HD float Add(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}
OSSGATE_HD float Sub(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fsub_rn(a, b);
#else
  return a - b;
#endif
}
OSSGATE_HD float Mul(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}
OSSGATE_HD float Div(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
OSSGATE_HD float Fma(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return __builtin_fmaf(a, b, c);
#endif
}
OSSGATE_HD uint32_t Bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}
OSSGATE_HD float FromBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}
OSSGATE_HD bool IsNaN(float f) { return (Bits(f) & 0x7FFFFFFFu) > 0x7F800000u; }
// uint32 -> float, round to nearest even (exact below 2^24).
OSSGATE_HD float U32ToFloat(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint2float_rn(u);
#else
  return static_cast<float>(u);
#endif
}

// ---- ordering ----

// 32-bit key whose unsigned order is the order of the logits (-0 as +0; NaN,
// which no sampled row holds, as the smallest key).
OSSGATE_HD uint32_t OrderKey(float l) {
  if (IsNaN(l)) return 0u;
  uint32_t b = Bits(l);
  if (b == 0x80000000u) b = 0u;  // -0 -> +0
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
// The logit of an order key (the inverse of OrderKey, for keys of non-NaN
// logits; -0 comes back as +0).
OSSGATE_HD float LogitOfKey(uint32_t key) { return FromBits((key & 0x80000000u) ? (key ^ 0x80000000u) : ~key); }
// Candidate order: (key a, id a) comes before (key b, id b).
OSSGATE_HD bool Before(uint32_t ka, int32_t ia, uint32_t kb, int32_t ib) { return ka > kb || (ka == kb && ia < ib); }

// ---- Philox4x32-10 (Salmon et al., SC'11; Random123's philox4x32, 10 rounds) ----

struct PhiloxBlock {
  uint32_t w[4];
};
OSSGATE_HD PhiloxBlock Philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kW0;
    k1 += kW1;
  }
  return {{c0, c1, c2, c3}};
}

// The Philox block holding the Gumbel words of ids 4g .. 4g+3 for draw
// `step` of stream `seed`: counter {g, step low, step high, 'GUMB'}, key
// {seed low, seed high}; id 4g + j takes word j.
inline constexpr uint32_t kGumbelDomain = 0x47554D42u;
OSSGATE_HD PhiloxBlock GumbelBlock(uint64_t seed, uint64_t step, uint32_t group) {
  return Philox4x32_10(group, static_cast<uint32_t>(step), static_cast<uint32_t>(step >> 32), kGumbelDomain,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// ---- elementary functions ----

// Natural logarithm of a positive normal float (callers pass only such
// values). x = 2^e * m with m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.1716, by its series to s^9 (truncation
// below 1e-9 relative); log(2) split in a high part exact in products with e.
OSSGATE_HD float Log(float x) {
  uint32_t b = Bits(x);
  int32_t e = static_cast<int32_t>(b >> 23) - 127;
  uint32_t mb = (b & 0x007FFFFFu) | 0x3F800000u;  // m in [1, 2)
  if (mb > 0x3FB504F3u) {                           // m > sqrt(2): halve it
    mb -= 0x00800000u;
    e += 1;
  }
  const float f = Sub(FromBits(mb), 1.0f);  // exact (Sterbenz)
  const float s = Div(f, Add(2.0f, f));
  const float s2 = Mul(s, s);
  float r = Fma(s2, 0.22222222f, 0.28571429f);  // 2/9, 2/7
  r = Fma(r, s2, 0.4f);
  r = Fma(r, s2, 0.66666667f);
  r = Mul(r, s2);
  const float log_m = Fma(s, r, Add(s, s));  // 2s + s * (2/3 s^2 + 2/5 s^4 + ...)
  const float ef = static_cast<float>(e);    // |e| < 2^8: exact
  return Fma(ef, 0.693145751953125f, Fma(ef, 1.4286067653e-06f, log_m));
}

// exp(z) for z <= 0 (0 below -87, near the end of the normal range;
// -inf gives 0). n = round(z / log 2), r = z - n log 2 in [-0.35, 0.35],
// exp(r) by its Taylor polynomial to r^7, times 2^n.
OSSGATE_HD float ExpNonPositive(float z) {
  if (!(z >= -87.0f)) return 0.0f;
  const float t = Mul(z, 1.44269504f);
#if defined(__CUDA_ARCH__)
  const float n = rintf(t);
#else
  const float n = __builtin_rintf(t);  // round to nearest even, as rintf on the device
#endif
  float r = Fma(-n, 0.693145751953125f, z);
  r = Fma(-n, 1.4286067653e-06f, r);
  float p = Fma(r, 1.98412698e-04f, 1.38888889e-03f);  // 1/7!, 1/6!
  p = Fma(p, r, 8.33333333e-03f);
  p = Fma(p, r, 4.16666667e-02f);
  p = Fma(p, r, 1.66666667e-01f);
  p = Fma(p, r, 0.5f);
  p = Fma(p, r, 1.0f);
  p = Fma(p, r, 1.0f);
  const int32_t ni = static_cast<int32_t>(n);  // in [-126, 0]
  return Mul(p, FromBits(static_cast<uint32_t>(ni + 127) << 23));
}

// ---- the sampler's quantities ----

// Integer mass of a token with z = (l - max) / T <= 0: floor(exp(z) * 2^32),
// so the most likely token weighs 2^32 and sums over a vocabulary of up to
// 2^20 tokens stay exact in 64 bits (and in a double, below 2^53).
OSSGATE_HD uint64_t Mass(float z) {
  const float w = Mul(ExpNonPositive(z), 4294967296.0f);  // exact (power of two)
#if defined(__CUDA_ARCH__)
  return __float2ull_rz(w);
#else
  return static_cast<uint64_t>(w);
#endif
}

// z = (l - max) * inv_t, the log of a token's probability relative to the
// best one (inv_t = Div(1, T), computed once per row).
OSSGATE_HD float RelativeLogit(float l, float max_l, float inv_t) { return Mul(Sub(l, max_l), inv_t); }

// The Gumbel-perturbed score of a token with logit l whose Philox word is
// `word`: l * inv_t - log(E), E = -log(1 - V) ~ Exp(1), V = (word + 1/2) / 2^32
// in (0, 1). E is computed as log(1 - V) * V / ((1 - V) - 1) (Goldberg's
// log1p), accurate for small V, where the winners are.
OSSGATE_HD float GumbelScore(float l, float inv_t, uint32_t word) {
  float v = Fma(U32ToFloat(word), 2.3283064365386963e-10f, 1.1641532182693481e-10f);  // 2^-32, 2^-33
  if (v > 0.99999994f) v = 0.99999994f;  // rounding could reach 1
  const float y = Sub(1.0f, v);
  const float e = y == 1.0f ? v : Div(Mul(Log(y), v), Sub(y, 1.0f));
  return Sub(Mul(l, inv_t), Log(e));
}

// The top-p threshold on the cumulative integer mass: the kept prefix is the
// shortest whose mass reaches ceil(top_p * total).
OSSGATE_HD uint64_t TopPThreshold(float top_p, uint64_t total) {
  const double t = static_cast<double>(top_p) * static_cast<double>(total);
  const uint64_t floor_t = static_cast<uint64_t>(t);
  return static_cast<double>(floor_t) == t ? floor_t : floor_t + 1;
}

// min-p as a bound on z: keep z >= Log(min_p) (min_p in (0, 1]; values
// below the smallest normal float count as that).
OSSGATE_HD float MinPBound(float min_p) { return Log(min_p < 1.17549435e-38f ? 1.17549435e-38f : min_p); }

}  // namespace ossgate::model::sampling
