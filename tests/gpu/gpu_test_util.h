// Helpers for the GPU tests: device buffers (poisoned before each run so
// unwritten outputs show up), fresh random inputs, error metrics.
#pragma once

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/gguf/ggml_types.h"
#include "kernels/cuda_check.h"

namespace ossgate::testing {

template <typename T>
class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(size_t n) : n_(n) { CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), std::max<size_t>(1, n) * sizeof(T))); }
  explicit DevBuf(const std::vector<T>& v) : DevBuf(v.size()) { Upload(v); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
    return *this;
  }
  ~DevBuf() {
    if (p_) cudaFree(p_);
  }
  T* get() const { return p_; }
  size_t size() const { return n_; }
  void Upload(const std::vector<T>& v) {
    CUDA_CHECK(cudaMemcpy(p_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> v(n_);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(v.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
  }
  // All bits set: NaN for float, fp16 and bf16; -1 for integers.
  void Poison() { CUDA_CHECK(cudaMemset(p_, 0xFF, n_ * sizeof(T))); }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// A fresh seed per call, printed (log and test XML) so a failure can be
// reproduced: OSSGATE_TEST_SEED=<seed> gives that seed to every call instead.
inline uint32_t FreshSeed() {
  static std::random_device rd;
  const char* forced = std::getenv("OSSGATE_TEST_SEED");
  const uint32_t s = forced && *forced ? static_cast<uint32_t>(std::strtoul(forced, nullptr, 10)) : rd();
  ::testing::Test::RecordProperty("seed", std::to_string(s));
  std::printf("seed %u (OSSGATE_TEST_SEED=%u reproduces it)\n", s, s);
  return s;
}

inline std::vector<float> RandomFloats(size_t n, std::mt19937& rng, float stddev = 1.0f, float mean = 0.0f) {
  std::normal_distribution<float> d(mean, stddev);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

inline uint16_t Half(float v) { return gguf::FloatToFp16(v); }
inline float HalfToFloat(uint16_t h) { return gguf::Fp16ToFloat(h); }
inline float RoundHalf(float v) { return HalfToFloat(Half(v)); }
inline float RoundBf16(float v) { return gguf::Bf16ToFloat(gguf::FloatToBf16(v)); }

// ||got - want|| / ||want||; NaN or inf anywhere gives +inf.
inline double RelErr(const float* got, const float* want, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    const double d = static_cast<double>(got[i]) - want[i];
    num += d * d;
    den += static_cast<double>(want[i]) * want[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}
inline double RelErr(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  return RelErr(got.data(), want.data(), std::min(got.size(), want.size()));
}

}  // namespace ossgate::testing
