// CPU weight-format benchmark (not a test; results in docs/perf.md): the
// row dequantization the CPU backend runs on the fly (DequantizeRow), and a
// one-token matmul through it (cpu::MatMul), for every weight type. A
// Phi-3-mini-sized matrix by default (3072 x 3072). Each figure is the
// fastest of --reps passes.
//
//   dequant_bench [--rows=3072] [--cols=3072] [--reps=20] [--threads=1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "inference_worker/gguf/ggml_types.h"
#include "inference_worker/model/cpu_ops.h"
#include "inference_worker/model/thread_pool.h"

ABSL_FLAG(int, rows, 3072, "matrix rows (output features)");
ABSL_FLAG(int, cols, 3072, "matrix columns (input features; a multiple of 256)");
ABSL_FLAG(int, reps, 20, "passes over the matrix per measurement (the fastest is reported)");
ABSL_FLAG(int, threads, 1, "matmul threads");

namespace {

using ossgate::gguf::GgmlType;

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int64_t rows = absl::GetFlag(FLAGS_rows), cols = absl::GetFlag(FLAGS_cols);
  const int reps = absl::GetFlag(FLAGS_reps);
  if (cols % 256 != 0 || rows <= 0 || reps <= 0) {
    std::fprintf(stderr, "error: --cols must be a positive multiple of 256, --rows and --reps positive\n");
    return 2;
  }
  ossgate::model::ThreadPool pool(absl::GetFlag(FLAGS_threads));
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(cols)), y(static_cast<size_t>(rows));
  for (float& v : w) v = normal(rng);
  for (float& v : x) v = normal(rng) * 50.0f;
  std::printf("| type | bytes/elem | dequant Gelem/s | dequant GB/s read | matvec ms (%lld x %lld, %d thread%s) |\n",
              static_cast<long long>(rows), static_cast<long long>(cols), pool.size(), pool.size() == 1 ? "" : "s");
  std::printf("|---|---:|---:|---:|---:|\n");
  double checksum = 0;
  for (GgmlType type : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0, GgmlType::kQ6_K,
                        GgmlType::kQ5_K, GgmlType::kQ4_K, GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kMXFP4}) {
    const int64_t row_bytes = ossgate::gguf::RowBytes(type, cols);
    std::vector<uint8_t> bytes(static_cast<size_t>(row_bytes * rows));
    for (int64_t r = 0; r < rows; ++r) {
      ossgate::gguf::QuantizeRow(type, &w[r * cols], bytes.data() + r * row_bytes, cols);
    }
    std::vector<float> row(static_cast<size_t>(cols));
    // The fastest pass of `reps`: the machines these run on are shared, and
    // the minimum is the least disturbed measurement.
    double dq = 1e30, mv = 1e30;
    for (int i = 0; i < reps; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int64_t r = 0; r < rows; ++r) {
        ossgate::gguf::DequantizeRow(type, bytes.data() + r * row_bytes, row.data(), cols);
        checksum += row[static_cast<size_t>(r % cols)];
      }
      dq = std::min(dq, Seconds(t0));
    }
    ossgate::model::Matrix m;
    m.type = type;
    m.cols = cols;
    m.rows = rows;
    m.row_bytes = static_cast<uint64_t>(row_bytes);
    m.data = bytes.data();
    m.name = "bench";
    for (int i = 0; i < reps; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      ossgate::model::cpu::MatMul(m, 0, x.data(), 1, nullptr, y.data(), rows, pool);
      checksum += y[static_cast<size_t>(i % rows)];
      mv = std::min(mv, Seconds(t0));
    }
    const double elems = static_cast<double>(rows) * static_cast<double>(cols);
    std::printf("| %s | %.4g | %.2f | %.2f | %.2f |\n", ossgate::gguf::GgmlTypeName(static_cast<uint32_t>(type)),
                static_cast<double>(row_bytes) / static_cast<double>(cols), elems / dq * 1e-9,
                static_cast<double>(bytes.size()) / dq * 1e-9, mv * 1e3);
  }
  std::fprintf(stderr, "checksum %g\n", checksum);
  return 0;
}
