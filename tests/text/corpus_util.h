// Reading the tokenizer exactness corpora (tools/tokenizer_corpus/ builds
// them and their expected ids) and describing a mismatch, for the corpus
// tests of every tokenizer.
#pragma once

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/utf8.h"

namespace ossgate::text::corpus {

struct Document {
  int index = 0;
  bool allow_special = false;
  std::string label;
  std::string bytes;
  std::vector<int32_t> expected;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Parses the corpus ("doc <index> <mode> <nbytes> <label>\n<bytes>\n"...).
inline bool ParseCorpus(const std::string& data, std::vector<Document>* docs, std::string* error) {
  size_t pos = 0;
  auto line = [&](absl::string_view* out) {
    const size_t end = data.find('\n', pos);
    if (end == std::string::npos) return false;
    *out = absl::string_view(data).substr(pos, end - pos);
    pos = end + 1;
    return true;
  };
  absl::string_view l;
  if (!line(&l) || l != "ossgate-tokenizer-corpus 1") return *error = "bad corpus header", false;
  while (line(&l) && l != "end") {
    std::vector<absl::string_view> f = absl::StrSplit(l, ' ');
    Document d;
    size_t n = 0;
    if (f.size() != 5 || f[0] != "doc" || !absl::SimpleAtoi(f[1], &d.index) || !absl::SimpleAtoi(f[3], &n) ||
        (f[2] != "ordinary" && f[2] != "special") || pos + n + 1 > data.size() || data[pos + n] != '\n') {
      return *error = absl::StrCat("bad corpus record header: ", l), false;
    }
    d.allow_special = f[2] == "special";
    d.label = std::string(f[4]);
    d.bytes = data.substr(pos, n);
    pos += n + 1;
    docs->push_back(std::move(d));
  }
  if (l != "end") return *error = "corpus is truncated (no end line)", false;
  return true;
}

inline bool ParseIds(const std::string& data, std::vector<Document>* docs, std::string* error) {
  size_t k = 0;
  for (absl::string_view l : absl::StrSplit(data, '\n', absl::SkipEmpty())) {
    if (l == "end") return k == docs->size() || (*error = "id file has fewer documents than the corpus", false);
    std::vector<absl::string_view> f = absl::StrSplit(l, ' ');
    int index = 0;
    size_t count = 0;
    if (f.size() < 2 || !absl::SimpleAtoi(f[0], &index) || !absl::SimpleAtoi(f[1], &count) || f.size() != count + 2 ||
        k >= docs->size() || (*docs)[k].index != index) {
      return *error = absl::StrCat("bad id record ", k), false;
    }
    for (size_t i = 0; i < count; ++i) {
      int32_t id = 0;
      if (!absl::SimpleAtoi(f[i + 2], &id)) return *error = absl::StrCat("bad id in record ", k), false;
      (*docs)[k].expected.push_back(id);
    }
    ++k;
  }
  return *error = "id file is truncated (no end line)", false;
}

// Printable rendering: UTF-8 as is, control bytes escaped.
inline std::string Show(absl::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += absl::StrFormat("\\x%02x", c);
    else out.push_back(static_cast<char>(c));
  }
  return SanitizeUtf8(out);
}

inline std::string ShowIds(const Tokenizer& tok, const std::vector<int32_t>& ids, size_t from, size_t to) {
  std::vector<std::string> parts;
  for (size_t i = from; i < std::min(to, ids.size()); ++i) {
    parts.push_back(absl::StrFormat("%d\"%s\"", ids[i], Show(tok.TokenBytes(ids[i]))));
  }
  return absl::StrJoin(parts, " ");
}

inline std::string DescribeMismatch(const Tokenizer& tok, const Document& d, const std::vector<int32_t>& got) {
  size_t k = 0;
  while (k < got.size() && k < d.expected.size() && got[k] == d.expected[k]) ++k;
  const size_t from = k >= 3 ? k - 3 : 0;
  // Byte offset where the first differing token starts.
  size_t offset = 0;
  for (size_t i = 0; i < k; ++i) offset += tok.TokenBytes(got[i]).size();
  const std::string text = SanitizeUtf8(d.bytes);
  return absl::StrFormat(
      "doc %d (%s, %s, %d bytes): first difference at token %d (byte %d of the repaired text)\n"
      "  expected (%d ids): ... %s\n"
      "  got      (%d ids): ... %s\n"
      "  text there: \"%s\"",
      d.index, d.label, d.allow_special ? "special tokens allowed" : "ordinary", d.bytes.size(), k, offset,
      d.expected.size(), ShowIds(tok, d.expected, from, k + 6), got.size(), ShowIds(tok, got, from, k + 6),
      Show(absl::string_view(text).substr(offset >= 20 ? offset - 20 : 0, 80)));
}

// Reads a corpus and its ids; false with *error on a defect.
inline bool LoadCorpus(const std::string& corpus_path, const std::string& ids_path, std::vector<Document>* docs,
                       std::string* error) {
  if (!ParseCorpus(ReadFile(corpus_path), docs, error)) return *error = corpus_path + ": " + *error, false;
  if (!ParseIds(ReadFile(ids_path), docs, error)) return *error = ids_path + ": " + *error, false;
  return true;
}

}  // namespace ossgate::text::corpus
