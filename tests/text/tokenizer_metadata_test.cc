// WriteTokenizerMetadata writes what Tokenizer::FromGguf reads back as the
// same tokenizer, for the three vocabulary kinds, with llama.cpp's keys.
#include "inference_worker/text/tokenizer_metadata.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::text {
namespace {

using ::testing::ElementsAreArray;

class TokenizerMetadataTest : public ::testing::Test {
 protected:
  // Writes `vocab` into a GGUF of architecture `arch` and parses it.
  const gguf::GgufFile& WriteAndParse(const VocabSpec& vocab, const std::string& arch) {
    gguf::GgufWriter w;
    w.SetString("general.architecture", arch);
    absl::Status st = WriteTokenizerMetadata(vocab, w);
    EXPECT_TRUE(st.ok()) << st;
    const std::string path = ::testing::TempDir() + "/tokenizer_metadata_test.gguf";
    st = w.Begin(path);
    if (st.ok()) st = w.Finish();
    EXPECT_TRUE(st.ok()) << st;
    std::ifstream in(path, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    absl::StatusOr<gguf::GgufFile> file =
        gguf::GgufFile::Parse(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes_.data()), bytes_.size()));
    EXPECT_TRUE(file.ok()) << file.status();
    file_ = std::make_unique<gguf::GgufFile>(*std::move(file));
    return *file_;
  }

  // FromGguf of the written file encodes like Create(vocab).
  void ExpectSameTokenizer(const VocabSpec& vocab, const std::string& arch, const std::vector<std::string>& texts) {
    const gguf::GgufFile& file = WriteAndParse(vocab, arch);
    absl::StatusOr<std::unique_ptr<Tokenizer>> loaded = Tokenizer::FromGguf(file);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    absl::StatusOr<std::unique_ptr<Tokenizer>> direct = Tokenizer::Create(vocab);
    ASSERT_TRUE(direct.ok()) << direct.status();
    EXPECT_EQ((*loaded)->vocab_size(), (*direct)->vocab_size());
    EXPECT_EQ((*loaded)->bos_id(), (*direct)->bos_id());
    EXPECT_EQ((*loaded)->add_bos(), (*direct)->add_bos());
    for (const std::string& t : texts) {
      for (bool special : {false, true}) {
        EXPECT_EQ((*loaded)->Encode(t, special), (*direct)->Encode(t, special)) << t << " special=" << special;
      }
    }
  }

  std::string bytes_;
  std::unique_ptr<gguf::GgufFile> file_;
};

TEST_F(TokenizerMetadataTest, TinyVocabularyKeepsTheGptOssKeys) {
  const VocabSpec vocab = MakeTinyVocab();
  const gguf::GgufFile& file = WriteAndParse(vocab, "gpt-oss");
  EXPECT_EQ(*file.GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*file.GetString("tokenizer.ggml.pre"), "gpt-4o");
  auto id_of = [&](const std::string& text) {
    return static_cast<uint64_t>(std::find(vocab.tokens.begin(), vocab.tokens.end(), text) - vocab.tokens.begin());
  };
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.bos_token_id"), id_of("<|startoftext|>"));
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.eos_token_id"), id_of("<|return|>"));
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.padding_token_id"), id_of("<|endoftext|>"));
  EXPECT_EQ(file.FindKey("tokenizer.ggml.unknown_token_id"), nullptr);
  EXPECT_EQ(file.FindKey("tokenizer.ggml.scores"), nullptr);
  // The key order of the generator before this function existed, so model
  // files stay byte-identical.
  std::vector<std::string> keys;
  for (const auto& [key, value] : file.metadata()) keys.push_back(key);
  EXPECT_THAT(keys, ElementsAreArray({"general.architecture", "tokenizer.ggml.model", "tokenizer.ggml.pre",
                                      "tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges",
                                      "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                      "tokenizer.ggml.padding_token_id", "tokenizer.ggml.add_bos_token"}));
  ExpectSameTokenizer(vocab, "gpt-oss", {"<|start|>user<|message|>The answer isn't 42.<|end|>"});
}

TEST_F(TokenizerMetadataTest, Qwen25RoundTrips) {
  absl::StatusOr<VocabSpec> vocab = LoadVocabFile(OSSGATE_QWEN2_VOCAB_PATH);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  const gguf::GgufFile& file = WriteAndParse(*vocab, "qwen2");
  EXPECT_EQ(*file.GetString("tokenizer.ggml.pre"), "qwen2");
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.eos_token_id"), 151645u);
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.bos_token_id"), 151643u);
  EXPECT_EQ((*file.GetStringArray("tokenizer.ggml.tokens"))->size(), 151936u);
  ExpectSameTokenizer(*vocab, "qwen2",
                      {"<|im_start|>user\nCafe\xCC\x81 2024 it's<|im_end|>\n", "  spaces\t\n\n", "\xF0\x9F\x98\x80"});
}

TEST_F(TokenizerMetadataTest, Phi3RoundTripsWithScoresAndRstrip) {
  absl::StatusOr<VocabSpec> vocab = LoadVocabFile(OSSGATE_PHI3_VOCAB_PATH);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  // The rstrip tokens of the asset (from Phi-3's tokenizer_config.json) are
  // the ones llama.cpp's rule gives, which FromGguf applies.
  EXPECT_EQ(vocab->rstrip_ids, Phi3RstripIds(*vocab));
  const gguf::GgufFile& file = WriteAndParse(*vocab, "phi3");
  EXPECT_EQ(*file.GetString("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(*file.GetString("tokenizer.ggml.pre"), "default");
  EXPECT_EQ(file.FindKey("tokenizer.ggml.merges"), nullptr);
  EXPECT_EQ(file.FindKey("tokenizer.ggml.scores")->real_array.size(), 32064u);
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.unknown_token_id"), 0u);
  EXPECT_EQ(*file.GetUint("tokenizer.ggml.eos_token_id"), 32000u);
  ExpectSameTokenizer(*vocab, "phi3",
                      {"<|user|>\n  Hello world<|end|>\n<|assistant|>\n", " x", "\xE2\x82\xAC \xF0\x9F\xA6\x99", "</s> y"});
}

TEST_F(TokenizerMetadataTest, RefusesInconsistentVocabularies) {
  VocabSpec v = MakeTinyVocab();
  v.token_types.pop_back();
  gguf::GgufWriter w;
  EXPECT_EQ(WriteTokenizerMetadata(v, w).code(), absl::StatusCode::kInvalidArgument);
  v = MakeTinyVocab();
  v.model = "llama";  // no scores
  EXPECT_EQ(WriteTokenizerMetadata(v, w).code(), absl::StatusCode::kInvalidArgument);
  v = MakeTinyVocab();
  v.eos_id = static_cast<int32_t>(v.tokens.size());
  EXPECT_EQ(WriteTokenizerMetadata(v, w).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace ossgate::text
