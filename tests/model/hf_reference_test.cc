// The CPU backend against logits recorded from Hugging Face transformers
// (GptOssForCausalLM, Qwen2ForCausalLM or Phi3ForCausalLM by the file's
// architecture; float32, eager) on the same weights: the independent
// reference of the model core. Fixtures: every <name>.tokens in
// tests/fixtures/hf_reference/ with its <name>.gguf, made by
// tests/reference/hf_reference.py (see docs/testing.md to regenerate); a
// <name>.greedy file adds HF's greedy continuation, which the backend must
// reproduce decoding one token at a time.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "gtest/gtest.h"
#include "inference_worker/model/cpu_backend.h"
#include "openssl/evp.h"
#include "tests/model/test_models.h"

namespace ossgate::testing {
namespace {

std::string Sha256Hex(const std::vector<uint8_t>& bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < len; ++i) {
    s += kHex[md[i] >> 4];
    s += kHex[md[i] & 15];
  }
  return s;
}

class HfReferenceTest : public ::testing::TestWithParam<std::string> {};

// The GGUF a fixture was computed from: the "gguf" member of <base>.json
// (several fixtures share one model file).
std::string FixtureGguf(const std::string& dir, const std::string& base) {
  std::ifstream in(base + ".json");
  std::stringstream s;
  s << in.rdbuf();
  const std::string json = s.str();
  const std::string key = "\"gguf\": \"";
  const size_t at = json.find(key);
  if (at == std::string::npos) return base + ".gguf";
  const size_t end = json.find('"', at + key.size());
  return dir + json.substr(at + key.size(), end - at - key.size());
}

TEST_P(HfReferenceTest, CpuBackendMatchesTransformersAtEveryPosition) {
  const std::string dir = std::string(OSSGATE_SOURCE_DIR) + "/tests/fixtures/hf_reference/";
  const std::string base = dir + GetParam();
  auto model = LoadModel(FixtureGguf(dir, base));
  ASSERT_NE(model, nullptr);
  std::ifstream meta(base + ".tokens");
  ASSERT_TRUE(meta.good()) << base << ".tokens";
  std::string sha;
  int vocab = 0, n = 0;
  meta >> sha >> vocab >> n;
  std::vector<int32_t> tokens(n);
  for (int& t : tokens) meta >> t;
  ASSERT_TRUE(meta) << "malformed " << base << ".tokens";
  // The logits belong to exactly these weights.
  ASSERT_EQ(Sha256Hex(model->bytes), sha) << "fixture GGUF changed; regenerate the HF logits";

  // The positions whose logits the fixture kept (all, without a .positions file).
  std::vector<int> positions;
  if (std::ifstream pos(base + ".positions"); pos.good()) {
    int k = 0;
    pos >> k;
    positions.resize(k);
    for (int& p : positions) pos >> p;
    ASSERT_TRUE(pos && k > 0) << "malformed " << base << ".positions";
  } else {
    for (int p = 0; p < n; ++p) positions.push_back(p);
  }
  std::ifstream bin(base + ".logits.bin", std::ios::binary);
  std::vector<float> want(positions.size() * vocab);
  bin.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * sizeof(float)));
  ASSERT_EQ(bin.gcount(), static_cast<std::streamsize>(want.size() * sizeof(float)));

  model::CpuBackendOptions o;
  o.n_threads = 2;
  o.kv.max_sequences = 1;
  o.max_context = n;
  auto backend = model::CpuBackend::Create(*model->file, o);
  ASSERT_TRUE(backend.ok()) << backend.status();
  ASSERT_EQ((*backend)->config().vocab_size, vocab);
  ASSERT_TRUE((*backend)->kv().AddSequence(1).ok());
  std::vector<float> got;
  model::SequenceStep step{1, tokens, model::Logits::kAll};
  ASSERT_TRUE((*backend)->Forward({&step, 1}, &got).ok());

  double worst = 0;
  for (size_t k = 0; k < positions.size(); ++k) {
    const int p = positions[k];
    ASSERT_TRUE(p >= 0 && p < n) << "position " << p;
    const float* g = &got[static_cast<size_t>(p) * vocab];
    const float* w = &want[k * vocab];
    double num = 0, den = 0;
    for (int i = 0; i < vocab; ++i) {
      num += (double(g[i]) - w[i]) * (double(g[i]) - w[i]);
      den += double(w[i]) * w[i];
    }
    const double rel = std::sqrt(num / den);
    worst = std::max(worst, rel);
    EXPECT_LT(rel, 1e-4) << "position " << p;
    EXPECT_EQ(std::max_element(g, g + vocab) - g, std::max_element(w, w + vocab) - w) << "argmax at position " << p;
  }
  RecordProperty("max_rel_err", std::to_string(worst));
  std::printf("%s: %zu of %d positions, max relative error %.3g\n", GetParam().c_str(), positions.size(), n, worst);

  // HF's greedy continuation, when the fixture has one: the prompt in one
  // step, then one token per step through the KV cache.
  std::ifstream greedy_file(base + ".greedy");
  if (!greedy_file.good()) return;
  int n_prompt = 0, n_greedy = 0;
  greedy_file >> n_prompt >> n_greedy;
  std::vector<int32_t> want_greedy(n_greedy);
  for (int32_t& t : want_greedy) greedy_file >> t;
  ASSERT_TRUE(greedy_file && n_prompt == n && n_greedy > 0) << "malformed " << base << ".greedy";
  model::CpuBackendOptions g;
  g.n_threads = 2;
  g.kv.max_sequences = 1;
  g.max_context = n + n_greedy;
  auto decoder = model::CpuBackend::Create(*model->file, g);
  ASSERT_TRUE(decoder.ok()) << decoder.status();
  ASSERT_TRUE((*decoder)->kv().AddSequence(1).ok());
  std::vector<int32_t> next = tokens;
  for (int i = 0; i < n_greedy; ++i) {
    model::SequenceStep s{1, next, model::Logits::kLast};
    ASSERT_TRUE((*decoder)->Forward({&s, 1}, &got).ok());
    const int32_t argmax = static_cast<int32_t>(std::max_element(got.begin(), got.end()) - got.begin());
    ASSERT_EQ(argmax, want_greedy[i]) << "greedy token " << i << " of " << n_greedy;
    next = {argmax};
  }
  std::printf("%s: %d greedy tokens equal\n", GetParam().c_str(), n_greedy);
}

// Every fixture in the folder: <name>.tokens beside <name>.gguf.
std::vector<std::string> Fixtures() {
  std::vector<std::string> names;
  const std::filesystem::path dir = std::filesystem::path(OSSGATE_SOURCE_DIR) / "tests/fixtures/hf_reference";
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".tokens") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// gtest names allow letters, digits and underscores only.
std::string FixtureName(const ::testing::TestParamInfo<std::string>& fixture) {
  std::string name = fixture.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfReferenceTest, ::testing::ValuesIn(Fixtures()), FixtureName);

// The two gpt-oss fixtures are committed; a folder listing that lost them
// would silently test nothing.
TEST(HfReferenceFixturesTest, TheCommittedFixturesAreFound) {
  const std::vector<std::string> names = Fixtures();
  for (const char* name : {"tiny", "window"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
  }
}

}  // namespace
}  // namespace ossgate::testing
