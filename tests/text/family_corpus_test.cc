// Exactness of the Qwen2.5 (byte-level BPE, pre "qwen2") and Phi-3
// (SentencePiece) tokenizers against the Hugging Face tokenizers, each on a
// corpus of 1.25 MB: prose, code, 28 languages and scripts, emoji, combining
// marks and decomposed text, whitespace runs, digits, punctuation,
// contractions, special-token look-alikes, the family's chat prompts and
// invalid UTF-8 (tools/tokenizer_corpus/generate_family_corpus.mjs builds them
// and their expected ids; the README says how).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "inference_worker/text/normalize.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "inference_worker/text/vocab_file.h"
#include "tests/text/corpus_util.h"

namespace ossgate::text {
namespace {

// Encodes every document and compares; `expected_text` gives what Decode of
// an ordinary document's ids must return.
void CheckCorpus(const std::string& vocab_path, const std::string& corpus_path, const std::string& ids_path,
                 std::string (*expected_text)(const std::string&)) {
  std::vector<corpus::Document> docs;
  std::string error;
  ASSERT_TRUE(corpus::LoadCorpus(corpus_path, ids_path, &docs, &error)) << error;
  size_t total_bytes = 0;
  for (const corpus::Document& d : docs) total_bytes += d.bytes.size();
  ASSERT_GE(total_bytes, 1000000u) << "the corpus should hold at least 1 MB";
  ASSERT_GE(docs.size(), 1000u);

  absl::StatusOr<VocabSpec> spec = LoadVocabFile(vocab_path);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();

  const auto start = std::chrono::steady_clock::now();
  int mismatches = 0, round_trip_failures = 0, special_docs = 0;
  size_t total_ids = 0;
  std::vector<std::string> reports;
  std::string first_round_trip;
  for (const corpus::Document& d : docs) {
    std::vector<int32_t> got = (*tok)->Encode(d.bytes, d.allow_special);
    total_ids += got.size();
    special_docs += d.allow_special;
    if (got != d.expected) {
      ++mismatches;
      if (reports.size() < 5) reports.push_back(corpus::DescribeMismatch(**tok, d, got));
    }
    // Special documents may lose whitespace to rstrip tokens (Phi-3).
    if (!d.allow_special && (*tok)->Decode(got) != expected_text(d.bytes)) {
      if (round_trip_failures++ == 0) {
        first_round_trip = absl::StrCat("doc ", d.index, " (", d.label, "): \"", corpus::Show((*tok)->Decode(got)).substr(0, 80),
                                        "\" instead of \"", corpus::Show(expected_text(d.bytes)).substr(0, 80), "\"");
      }
    }
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded %zu documents (%d with special tokens), %zu bytes, %zu ids in %.2f s (%.1f MB/s)\n",
              docs.size(), special_docs, total_bytes, total_ids, seconds, total_bytes / seconds / 1e6);
  EXPECT_GT(special_docs, 100);
  EXPECT_EQ(mismatches, 0) << mismatches << " of " << docs.size()
                           << " documents differ from the reference; first ones:\n"
                           << absl::StrJoin(reports, "\n");
  EXPECT_EQ(round_trip_failures, 0) << "Decode(Encode(text)) differs from the text, first: " << first_round_trip;
}

TEST(FamilyCorpusTest, Qwen25MatchesHuggingFace) {
  // Qwen2's normalizer is NFC: decoding gives the normalized text back.
  CheckCorpus(OSSGATE_QWEN2_VOCAB_PATH, OSSGATE_QWEN2_CORPUS_PATH, OSSGATE_QWEN2_CORPUS_IDS_PATH,
              [](const std::string& bytes) { return ToNfc(SanitizeUtf8(bytes)); });
}

TEST(FamilyCorpusTest, Phi3MatchesHuggingFace) {
  // A "▁" (U+2581) of the text is a space once encoded, as in SentencePiece.
  CheckCorpus(OSSGATE_PHI3_VOCAB_PATH, OSSGATE_PHI3_CORPUS_PATH, OSSGATE_PHI3_CORPUS_IDS_PATH,
              [](const std::string& bytes) { return absl::StrReplaceAll(SanitizeUtf8(bytes), {{"\xE2\x96\x81", " "}}); });
}

}  // namespace
}  // namespace ossgate::text
