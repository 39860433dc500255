// Host sampler benchmark (not a test; results in docs/perf.md): time per
// Sampler::Sample over a vocabulary of --vocab random logits (normal,
// sigma 3) for greedy, temperature, top-p and top-k settings.
//
//   sampler_bench [--vocab=201088] [--reps=50]
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "inference_worker/model/sampler.h"

ABSL_FLAG(int, vocab, 201088, "vocabulary size");
ABSL_FLAG(int, reps, 50, "samples per setting");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const int vocab = absl::GetFlag(FLAGS_vocab), reps = absl::GetFlag(FLAGS_reps);
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> logits(vocab);
  for (float& v : logits) v = normal(rng);
  struct Setting {
    std::string name;
    float temperature, top_p;
    int top_k;
  };
  std::printf("| setting | ms per token (vocab %d) |\n|---|---:|\n", vocab);
  for (const Setting& s : {Setting{"greedy", 0.0f, 1.0f, 0}, Setting{"temperature 0.8", 0.8f, 1.0f, 0},
                           Setting{"temperature 0.8, top-p 0.95", 0.8f, 0.95f, 0},
                           Setting{"temperature 0.8, top-k 40", 0.8f, 1.0f, 40}}) {
    ossgate::model::SamplingParams p;
    p.temperature = s.temperature;
    p.top_p = s.top_p;
    p.top_k = s.top_k;
    const ossgate::model::Sampler sampler(p);
    long checksum = 0;
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      std::vector<float> row = logits;  // Sample may modify the logits (penalties)
      checksum += sampler.Sample(row, {}, static_cast<uint64_t>(i));
    }
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    std::printf("| %s | %.2f |\n", s.name.c_str(), ms);
    std::fprintf(stderr, "%s: checksum %ld\n", s.name.c_str(), checksum);
  }
  return 0;
}
