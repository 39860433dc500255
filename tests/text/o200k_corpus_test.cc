// Exactness of the o200k tokenizer against tiktoken on a 1.25 MB corpus of
// prose, code, 28 languages and scripts, emoji, combining marks, whitespace
// runs, digits, punctuation, contractions, special-token look-alikes and
// invalid UTF-8 (tools/tokenizer_corpus/ builds it and its expected ids).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"
#include "inference_worker/text/vocab_file.h"
#include "tests/text/corpus_util.h"

namespace ossgate::text {
namespace {

using corpus::DescribeMismatch;
using corpus::Document;
using corpus::ParseCorpus;
using corpus::ParseIds;
using corpus::ReadFile;

TEST(O200kCorpusTest, EveryDocumentMatchesTiktoken) {
  std::vector<Document> docs;
  std::string error;
  ASSERT_TRUE(ParseCorpus(ReadFile(OSSGATE_CORPUS_PATH), &docs, &error)) << OSSGATE_CORPUS_PATH << ": " << error;
  ASSERT_TRUE(ParseIds(ReadFile(OSSGATE_CORPUS_IDS_PATH), &docs, &error)) << OSSGATE_CORPUS_IDS_PATH << ": " << error;
  size_t total_bytes = 0;
  for (const Document& d : docs) total_bytes += d.bytes.size();
  ASSERT_GE(total_bytes, 1000000u) << "the corpus should hold at least 1 MB";
  ASSERT_GE(docs.size(), 1000u);

  absl::StatusOr<VocabSpec> spec = LoadVocabFile(OSSGATE_O200K_VOCAB_PATH);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = Tokenizer::Create(*std::move(spec));
  ASSERT_TRUE(tok.ok()) << tok.status();

  const auto start = std::chrono::steady_clock::now();
  int mismatches = 0, round_trip_failures = 0;
  size_t total_ids = 0;
  std::vector<std::string> reports;
  for (const Document& d : docs) {
    std::vector<int32_t> got = (*tok)->Encode(d.bytes, d.allow_special);
    total_ids += got.size();
    if (got != d.expected) {
      ++mismatches;
      if (reports.size() < 5) reports.push_back(DescribeMismatch(**tok, d, got));
    }
    // Decoding gives back the (repaired) text exactly.
    if ((*tok)->Decode(got) != SanitizeUtf8(d.bytes)) ++round_trip_failures;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("encoded %zu documents, %zu bytes, %zu ids in %.2f s (%.1f MB/s)\n", docs.size(), total_bytes, total_ids,
              seconds, total_bytes / seconds / 1e6);
  EXPECT_EQ(mismatches, 0) << mismatches << " of " << docs.size() << " documents differ from tiktoken; first ones:\n"
                           << absl::StrJoin(reports, "\n");
  EXPECT_EQ(round_trip_failures, 0);
}

}  // namespace
}  // namespace ossgate::text
