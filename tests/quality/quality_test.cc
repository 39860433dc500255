// Quality checks of the bundled small model, models/ossgate-small.gguf
// (docs/small_model.md), run by the project's engine on the CPU:
//   - the engine's logits match the training script's own PyTorch forward
//     pass over the same (MXFP4 / Q8_0 decoded) weights: the trained weights
//     mean the same thing to both;
//   - the tokenizer stored in the GGUF round-trips held-out text, and the
//     perplexity on that text is reported and bounded;
//   - greedy and seeded-sampled continuations of fixed prompts (and the
//     README demo's chat question) equal the committed golden outputs;
//   - at least 95% of the generated words are English dictionary words
//     (/usr/share/dict/american-english, Debian package wamerican).
// Fixtures: tests/quality/data/ (reference.* from train.py fixture,
// heldout.txt from prepare_corpus.py). To regenerate the golden outputs after
// retraining: OSSGATE_UPDATE_GOLDEN=1 ./small_model_quality_test.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/cpu_backend.h"
#include "inference_worker/model/generation.h"
#include "inference_worker/model/model_file.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/tokenizer.h"

namespace ossgate::testing {
namespace {

const std::string kSource = OSSGATE_SOURCE_DIR;
const std::string kModelPath = kSource + "/models/ossgate-small.gguf";
const std::string kData = kSource + "/tests/quality/data/";
constexpr char kDictionary[] = "/usr/share/dict/american-english";

// Measured 2026-11-26 with the committed model (docs/small_model.md): the
// engine's perplexity on heldout.txt (4856 tokens). The bound leaves 3% for
// legitimate changes of float summation order; a regression in the model
// core, the tokenizer or the weights moves it far more. (For scale: a
// uniform guess over the 4105 tokens is perplexity 4105.)
constexpr double kMeasuredPerplexity = 79.017;
constexpr double kMaxPerplexity = 81.5;

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class SmallModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto bytes = model::ReadModelFile(kModelPath);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    bytes_ = std::make_unique<model::ModelBytes>(*std::move(bytes));
    auto file = gguf::GgufFile::Parse(bytes_->bytes());
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::make_unique<gguf::GgufFile>(*std::move(file));
    auto tok = text::Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
  }
  static void TearDownTestSuite() {
    tokenizer_.reset();
    file_.reset();
    bytes_.reset();
  }

  void SetUp() override { ASSERT_NE(tokenizer_, nullptr) << "the bundled model did not load"; }

  static std::unique_ptr<model::CpuBackend> Backend(int max_context) {
    model::CpuBackendOptions o;
    o.n_threads = 2;
    o.kv.max_sequences = 1;
    o.max_context = max_context;
    auto b = model::CpuBackend::Create(*file_, o);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *std::move(b) : nullptr;
  }

  static std::unique_ptr<model::ModelBytes> bytes_;
  static std::unique_ptr<gguf::GgufFile> file_;
  static std::unique_ptr<text::Tokenizer> tokenizer_;
};
std::unique_ptr<model::ModelBytes> SmallModelTest::bytes_;
std::unique_ptr<gguf::GgufFile> SmallModelTest::file_;
std::unique_ptr<text::Tokenizer> SmallModelTest::tokenizer_;

TEST_F(SmallModelTest, IsAGptOssFileOfAtMost20MB) {
  EXPECT_LE(bytes_->size(), 20'000'000u);
  EXPECT_EQ(*file_->GetString("general.architecture"), "gpt-oss");
  EXPECT_EQ(*file_->GetUint("general.file_type"), 38u);  // MOSTLY_MXFP4_MOE
  EXPECT_GE(*file_->GetUint("gpt-oss.expert_count"), 8u);
  EXPECT_EQ(*file_->GetUint("gpt-oss.expert_used_count"), 4u);
  EXPECT_EQ(*file_->GetUint("gpt-oss.attention.sliding_window"), 128u);
  EXPECT_EQ(*file_->GetString("gpt-oss.rope.scaling.type"), "yarn");
  int experts = 0;
  for (const gguf::TensorInfo& t : file_->tensors()) {
    if (t.name.find("_exps.weight") != std::string::npos) {
      EXPECT_EQ(t.type, gguf::GgmlType::kMXFP4) << t.name;
      ++experts;
    }
  }
  EXPECT_EQ(experts, 3 * static_cast<int>(*file_->GetUint("gpt-oss.block_count")));
  for (const char* s : {"<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>", "<|start|>",
                        "<|end|>", "<|message|>", "<|call|>"}) {
    auto id = tokenizer_->SpecialTokenId(s);
    ASSERT_TRUE(id.has_value()) << s;
    EXPECT_EQ(tokenizer_->token_type(*id), text::TokenType::kControl) << s;
  }
}

// The engine against the training script's PyTorch forward pass (float32,
// CPU, weights decoded from the GGUF's MXFP4 / Q8_0 bytes) on held-out text.
TEST_F(SmallModelTest, LogitsMatchTheTrainingScriptsForwardPass) {
  std::ifstream meta(kData + "reference.tokens");
  ASSERT_TRUE(meta.good());
  std::string sha;
  int vocab = 0, n = 0, n_pos = 0;
  meta >> sha >> vocab >> n >> n_pos;
  std::vector<int32_t> tokens(n);
  for (int32_t& t : tokens) meta >> t;
  std::vector<int> positions(n_pos);
  for (int& p : positions) meta >> p;
  ASSERT_TRUE(meta) << "malformed reference.tokens";
  ASSERT_EQ(bytes_->sha256(), sha) << "the model changed; regenerate the fixture (docs/small_model.md)";
  std::ifstream bin(kData + "reference.logits.bin", std::ios::binary);
  std::vector<float> want(static_cast<size_t>(n_pos) * vocab);
  bin.read(reinterpret_cast<char*>(want.data()), static_cast<std::streamsize>(want.size() * sizeof(float)));
  ASSERT_EQ(bin.gcount(), static_cast<std::streamsize>(want.size() * sizeof(float)));

  auto backend = Backend(n);
  ASSERT_NE(backend, nullptr);
  ASSERT_EQ(backend->config().vocab_size, vocab);
  ASSERT_TRUE(backend->kv().AddSequence(1).ok());
  std::vector<float> got;
  model::SequenceStep step{1, tokens, model::Logits::kAll};
  ASSERT_TRUE(backend->Forward({&step, 1}, &got).ok());
  double worst = 0;
  for (int i = 0; i < n_pos; ++i) {
    const float* g = &got[static_cast<size_t>(positions[i]) * vocab];
    const float* w = &want[static_cast<size_t>(i) * vocab];
    double num = 0, den = 0;
    for (int v = 0; v < vocab; ++v) {
      num += (double(g[v]) - w[v]) * (double(g[v]) - w[v]);
      den += double(w[v]) * w[v];
    }
    const double rel = std::sqrt(num / den);
    worst = std::max(worst, rel);
    EXPECT_LT(rel, 1e-4) << "position " << positions[i];
    EXPECT_EQ(std::max_element(g, g + vocab) - g, std::max_element(w, w + vocab) - w)
        << "argmax at position " << positions[i];
  }
  std::printf("engine vs PyTorch: %d positions of %d tokens, max relative error %.3g\n", n_pos, n, worst);
  RecordProperty("max_rel_err", std::to_string(worst));
}

// Perplexity of the engine on held-out Brown Corpus text (documents the model
// never saw), each document scored in windows of 512 tokens (the training
// length).
TEST_F(SmallModelTest, HeldOutPerplexity) {
  const std::string text = ReadText(kData + "heldout.txt");
  ASSERT_FALSE(text.empty());
  auto backend = Backend(512);
  ASSERT_NE(backend, nullptr);
  double nll = 0;
  int64_t count = 0;
  int docs = 0;
  for (absl::string_view doc : absl::StrSplit(text, "\n\n", absl::SkipWhitespace())) {
    const std::vector<int32_t> ids = tokenizer_->Encode(doc, /*allow_special=*/false);
    ASSERT_EQ(tokenizer_->Decode(ids), doc) << "tokenizer round trip";
    ++docs;
    for (size_t s = 0; s + 1 < ids.size(); s += 512) {
      const size_t len = std::min<size_t>(512, ids.size() - 1 - s);
      std::span<const int32_t> in(ids.data() + s, len);
      ASSERT_TRUE(backend->kv().AddSequence(1).ok());
      std::vector<float> logits;
      model::SequenceStep step{1, in, model::Logits::kAll};
      ASSERT_TRUE(backend->Forward({&step, 1}, &logits).ok());
      backend->kv().RemoveSequence(1);
      const int V = backend->config().vocab_size;
      for (size_t t = 0; t < len; ++t) {
        const float* row = &logits[t * V];
        const float mx = *std::max_element(row, row + V);
        double sum = 0;
        for (int v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
        nll += mx + std::log(sum) - row[ids[s + t + 1]];
        ++count;
      }
    }
  }
  const double ppl = std::exp(nll / static_cast<double>(count));
  std::printf("held-out perplexity: %.3f over %lld tokens of %d documents (%.2f bits per byte)\n", ppl,
              static_cast<long long>(count), docs, nll / std::log(2.0) / static_cast<double>(text.size()));
  RecordProperty("perplexity", std::to_string(ppl));
  EXPECT_GT(ppl, 1.0);
  EXPECT_LT(ppl, kMaxPerplexity) << "measured " << kMeasuredPerplexity << " when the model was committed";
}

// ---------------------------------------------------------------- generation

struct Case {
  std::string name;
  std::string prompt;
  bool chat = false;
  float temperature = 0;
  float top_p = 1;
  uint64_t seed = 0;
  int max_tokens = 48;
};

std::vector<Case> Cases() {
  const std::vector<std::string> prompts = {
      "The old man walked slowly down the road",
      "In the morning the city",
      "She opened the letter and",
      "The committee reported that",
      "When the war was over,",
  };
  std::vector<Case> cases;
  for (size_t i = 0; i < prompts.size(); ++i) {
    cases.push_back({.name = absl::StrCat("greedy", i), .prompt = prompts[i]});
    cases.push_back({.name = absl::StrCat("sampled", i), .prompt = prompts[i], .temperature = 0.8f, .top_p = 0.95f,
                     .seed = 100 + i});
  }
  // Another seed of the demo's question, cut at 200 tokens.
  cases.push_back({.name = "chat_demo", .prompt = "Tell me a short story about a lighthouse keeper.", .chat = true,
                   .temperature = 0.8f, .seed = 7, .max_tokens = 200});
  // The README demo (tools/demo.sh): its question and sampling; the answer
  // ends with <|return|> inside 300 tokens.
  cases.push_back({.name = "chat_seed6", .prompt = "Tell me a short story about a lighthouse keeper.", .chat = true,
                   .temperature = 0.8f, .seed = 6, .max_tokens = 300});
  cases.push_back({.name = "chat_greedy", .prompt = "What did the farmers do in the spring?", .chat = true,
                   .max_tokens = 96});
  return cases;
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      out += c;
    }
  }
  return out;
}

class GenerationTest : public SmallModelTest {
 protected:
  // name -> generated text, computed once for the golden and word tests.
  static const std::map<std::string, std::string>& Generated() {
    static std::map<std::string, std::string>* out = [] {
      auto* m = new std::map<std::string, std::string>;
      auto backend = Backend(1024);
      const text::Tokenizer& tok = *tokenizer_;
      for (const Case& c : Cases()) {
        model::GenerationParams p;
        p.sampling.temperature = c.temperature;
        p.sampling.top_p = c.top_p;
        p.sampling.seed = c.seed;
        p.max_tokens = c.max_tokens;
        std::vector<int32_t> prompt;
        if (c.chat) {
          text::Conversation conv;
          conv.reasoning = text::ReasoningEffort::kLow;  // ossgate-client's default
          text::Message user;
          user.role = text::Role::kUser;
          user.content = c.prompt;
          conv.messages.push_back(user);
          auto rendered = text::RenderForCompletion(tok, conv);
          EXPECT_TRUE(rendered.ok()) << rendered.status();
          prompt = *rendered;
          p.harmony = true;
          for (const char* s : {"<|return|>", "<|call|>"}) p.stop_token_ids.push_back(*tok.SpecialTokenId(s));
        } else {
          // A plain continuation ends at the first special token (the model
          // also learned harmony frames and may start one).
          prompt = tok.Encode(c.prompt, false);
          for (int32_t id = 0; id < tok.vocab_size(); ++id) {
            if (tok.IsSpecial(id)) p.stop_token_ids.push_back(id);
          }
        }
        auto r = model::GenerateOne(*backend, tok, 1, prompt, p, nullptr);
        EXPECT_TRUE(r.ok()) << r.status();
        (*m)[c.name] = r.ok() ? r->text : "<error>";
      }
      return m;
    }();
    return *out;
  }
};

TEST_F(GenerationTest, ContinuationsEqualTheGoldenOutputs) {
  const auto& generated = Generated();
  const std::string golden_path = kData + "golden.txt";
  if (const char* u = std::getenv("OSSGATE_UPDATE_GOLDEN"); u && std::string(u) == "1") {
    std::ofstream out(golden_path, std::ios::binary);
    for (const Case& c : Cases()) out << c.name << '\t' << Escape(generated.at(c.name)) << '\n';
    std::printf("wrote %s\n", golden_path.c_str());
  }
  std::map<std::string, std::string> golden;
  std::istringstream in(ReadText(golden_path));
  for (std::string line; std::getline(in, line);) {
    const size_t tab = line.find('\t');
    if (tab != std::string::npos) golden[line.substr(0, tab)] = line.substr(tab + 1);
  }
  for (const Case& c : Cases()) {
    const std::string& text = generated.at(c.name);
    std::printf("%s [%s] %s|%s\n", c.name.c_str(), c.chat ? "chat" : "completion", c.prompt.c_str(),
                Escape(text).c_str());
    EXPECT_FALSE(text.empty()) << c.name;
    ASSERT_TRUE(golden.count(c.name)) << "no golden output for " << c.name << " in " << golden_path;
    EXPECT_EQ(Escape(text), golden[c.name]) << c.name << " (prompt: " << c.prompt << ")";
  }
}

TEST_F(GenerationTest, MostGeneratedWordsAreEnglishDictionaryWords) {
  std::ifstream dict_in(kDictionary);
  ASSERT_TRUE(dict_in.good()) << kDictionary << " is missing: install the Debian package wamerican (tools/setup.sh)";
  std::set<std::string> dict;
  for (std::string w; std::getline(dict_in, w);) {
    if (!w.empty()) dict.insert(w);
  }
  auto lower = [](std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  };
  auto known = [&](const std::string& w) {
    if (dict.count(w) || dict.count(lower(w))) return true;
    // Possessives and contractions the list does not hold ("Phyfe's").
    for (const char* suffix : {"'s", "'"}) {
      const std::string s = suffix;
      if (w.size() > s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0) {
        const std::string base = w.substr(0, w.size() - s.size());
        if (dict.count(base) || dict.count(lower(base))) return true;
      }
    }
    return false;
  };
  int total = 0, found = 0;
  std::map<std::string, int> unknown;
  for (const auto& [name, text] : Generated()) {
    // Words: letters with inner apostrophes or hyphens split into parts.
    std::string word;
    auto flush = [&] {
      while (!word.empty() && word.back() == '\'') word.pop_back();
      if (!word.empty()) {
        ++total;
        if (known(word)) {
          ++found;
        } else {
          ++unknown[word];
        }
      }
      word.clear();
    };
    for (char c : text) {
      if (std::isalpha(static_cast<unsigned char>(c)) || (c == '\'' && !word.empty())) {
        word += c;
      } else {
        flush();
      }
    }
    flush();
  }
  const double share = total ? static_cast<double>(found) / total : 0;
  std::string list;
  for (const auto& [w, n] : unknown) absl::StrAppend(&list, " ", w, n > 1 ? absl::StrCat("(", n, ")") : "");
  std::printf("dictionary words: %d of %d (%.1f%%); not in the list:%s\n", found, total, 100 * share, list.c_str());
  RecordProperty("dictionary_share", std::to_string(share));
  EXPECT_GE(total, 300);
  EXPECT_GE(share, 0.95);
}

}  // namespace
}  // namespace ossgate::testing
