// ossgate-small-data: the data side of the bundled small model
// (docs/small_model.md).
//
//   ossgate-small-data vocab --segments=train.seg --vocab_size=4096 --out=small.vocab
//     Trains a byte-level BPE vocabulary on the text of the segment file:
//     text is split into pieces by the project's own o200k pre-tokenizer (the
//     one the engine uses), then the most frequent adjacent pair is merged
//     until the vocabulary has vocab_size byte-level tokens (ties: the
//     smallest pair of ids). Ids 0..255 are the single bytes (id = byte value),
//     then one token per merge, then the nine harmony special tokens as
//     CONTROL tokens, in the order of text::MakeTinyVocab.
//
//   ossgate-small-data encode --vocab=small.vocab --segments=X.seg --out=X.bin
//     Encodes a segment file (format: prepare_corpus.py) with the project's
//     tokenizer. Plain documents become their tokens + <|endoftext|>; chat
//     records become the prompt text::RenderForCompletion renders for that
//     conversation (exactly what the worker renders for a chat request),
//     then <|channel|>final<|message|>, the answer, <|return|>. Every piece
//     of text is checked to decode back to itself.
//     Output (little endian): "OSTK", u32 version 1, u32 n_tokens,
//     u32 n_chat, u16 tokens[n_tokens], zero padding to a multiple of 4,
//     u32 chat_start[n_chat] (token offset of each chat record).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <queue>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "inference_worker/text/byte_level.h"
#include "inference_worker/text/harmony.h"
#include "inference_worker/text/pretokenizer.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

ABSL_FLAG(std::string, segments, "", "segment file (prepare_corpus.py output)");
ABSL_FLAG(std::string, vocab, "", "vocabulary file (encode)");
ABSL_FLAG(int, vocab_size, 4096, "byte-level tokens of the trained vocabulary (256 bytes + merges)");
ABSL_FLAG(std::string, out, "", "output path");

namespace {

using ossgate::text::TokenType;

constexpr const char* kSpecials[] = {"<|startoftext|>", "<|endoftext|>", "<|return|>", "<|constrain|>", "<|channel|>",
                                     "<|start|>",       "<|end|>",       "<|message|>", "<|call|>"};

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "ossgate-small-data: %s\n", message.c_str());
  std::exit(1);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Die("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

struct Segment {
  std::string header;  // "doc" or "chat <reasoning> <date|->"
  std::string user;    // chat only
  std::string text;    // document or answer
};

std::vector<Segment> ReadSegments(const std::string& path) {
  const std::string all = ReadFile(path);
  if (all.empty() || all[0] != '\x1e') Die(path + ": not a segment file (must start with 0x1E)");
  std::vector<Segment> out;
  for (absl::string_view rec : absl::StrSplit(absl::string_view(all).substr(1), '\x1e')) {
    const size_t nl = rec.find('\n');
    if (nl == absl::string_view::npos) Die(path + ": record without a header line");
    Segment s;
    s.header = std::string(rec.substr(0, nl));
    absl::string_view body = rec.substr(nl + 1);
    if (s.header.rfind("chat", 0) == 0) {
      const size_t nl2 = body.find('\n');
      if (nl2 == absl::string_view::npos) Die(path + ": chat record without an answer");
      s.user = std::string(body.substr(0, nl2));
      s.text = std::string(body.substr(nl2 + 1));
    } else if (s.header == "doc") {
      s.text = std::string(body);
    } else {
      Die(path + ": unknown record header '" + s.header + "'");
    }
    out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------- BPE training

uint64_t PairKey(int32_t a, int32_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }

int TrainVocab() {
  const std::string out_path = absl::GetFlag(FLAGS_out);
  const int vocab_size = absl::GetFlag(FLAGS_vocab_size);
  if (out_path.empty() || vocab_size < 256) Die("vocab needs --segments, --out and --vocab_size >= 256");
  auto pre = ossgate::text::PreTokenizer::Create();
  if (!pre.ok()) Die(std::string(pre.status().message()));

  std::unordered_map<std::string, int64_t> piece_counts;
  for (const Segment& s : ReadSegments(absl::GetFlag(FLAGS_segments))) {
    for (const std::string* t : {&s.user, &s.text}) {
      (*pre)->Split(*t, [&](absl::string_view piece) { ++piece_counts[std::string(piece)]; });
    }
  }
  // Words in a fixed order so the result does not depend on hash order.
  std::vector<std::pair<std::string, int64_t>> sorted(piece_counts.begin(), piece_counts.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::vector<int32_t>> words;
  std::vector<int64_t> counts;
  for (const auto& [piece, count] : sorted) {
    words.emplace_back(piece.begin(), piece.end());
    for (int32_t& c : words.back()) c &= 0xFF;
    counts.push_back(count);
  }
  std::fprintf(stderr, "vocab: %zu distinct pieces\n", words.size());

  std::unordered_map<uint64_t, int64_t> pair_count;
  std::unordered_map<uint64_t, std::vector<int32_t>> pair_words;  // may hold stale or repeated entries
  for (size_t w = 0; w < words.size(); ++w) {
    for (size_t i = 0; i + 1 < words[w].size(); ++i) {
      const uint64_t k = PairKey(words[w][i], words[w][i + 1]);
      pair_count[k] += counts[w];
      pair_words[k].push_back(static_cast<int32_t>(w));
    }
  }
  // Max-heap on (count, then smallest pair); entries are checked against
  // pair_count when popped (lazy deletion).
  using Entry = std::pair<int64_t, uint64_t>;
  auto less = [](const Entry& x, const Entry& y) {
    return x.first != y.first ? x.first < y.first : x.second > y.second;
  };
  std::priority_queue<Entry, std::vector<Entry>, decltype(less)> heap(less);
  for (const auto& [k, c] : pair_count) heap.push({c, k});

  std::vector<std::string> token_bytes;
  for (int b = 0; b < 256; ++b) token_bytes.emplace_back(1, static_cast<char>(b));
  std::unordered_map<std::string, int32_t> id_of;
  for (int b = 0; b < 256; ++b) id_of[token_bytes[b]] = b;
  ossgate::text::VocabSpec spec;
  std::vector<int32_t> stamp(words.size(), -1);

  while (static_cast<int>(token_bytes.size()) < vocab_size && !heap.empty()) {
    const auto [count, key] = heap.top();
    heap.pop();
    auto it = pair_count.find(key);
    if (it == pair_count.end() || it->second != count) continue;  // stale
    if (count < 2) break;  // a pair seen once teaches nothing
    const int32_t a = static_cast<int32_t>(key >> 32), b = static_cast<int32_t>(key & 0xFFFFFFFFu);
    const std::string joined = token_bytes[a] + token_bytes[b];
    auto [jt, inserted] = id_of.emplace(joined, static_cast<int32_t>(token_bytes.size()));
    if (inserted) token_bytes.push_back(joined);
    const int32_t merged = jt->second;
    spec.merges.push_back(absl::StrCat(ossgate::text::BytesToByteLevel(token_bytes[a]), " ",
                                       ossgate::text::BytesToByteLevel(token_bytes[b])));
    const int32_t merge_index = static_cast<int32_t>(spec.merges.size());
    std::vector<int32_t> affected = std::move(pair_words[key]);
    pair_words.erase(key);
    std::vector<uint64_t> touched;
    for (int32_t w : affected) {
      if (stamp[w] == merge_index) continue;
      stamp[w] = merge_index;
      std::vector<int32_t>& sym = words[w];
      bool has = false;
      for (size_t i = 0; i + 1 < sym.size() && !has; ++i) has = sym[i] == a && sym[i + 1] == b;
      if (!has) continue;
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        const uint64_t k = PairKey(sym[i], sym[i + 1]);
        pair_count[k] -= counts[w];
        touched.push_back(k);
      }
      std::vector<int32_t> next;
      next.reserve(sym.size());
      for (size_t i = 0; i < sym.size(); ++i) {
        if (i + 1 < sym.size() && sym[i] == a && sym[i + 1] == b) {
          next.push_back(merged);
          ++i;
        } else {
          next.push_back(sym[i]);
        }
      }
      sym = std::move(next);
      for (size_t i = 0; i + 1 < sym.size(); ++i) {
        const uint64_t k = PairKey(sym[i], sym[i + 1]);
        pair_count[k] += counts[w];
        pair_words[k].push_back(w);
        touched.push_back(k);
      }
    }
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (uint64_t k : touched) {
      auto ct = pair_count.find(k);
      if (ct->second <= 0) {
        pair_count.erase(ct);
      } else {
        heap.push({ct->second, k});
      }
    }
  }
  for (const std::string& bytes : token_bytes) {
    spec.tokens.push_back(ossgate::text::BytesToByteLevel(bytes));
    spec.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  for (const char* s : kSpecials) {
    spec.tokens.emplace_back(s);
    spec.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  }
  auto tok = ossgate::text::Tokenizer::Create(spec);
  if (!tok.ok()) Die("trained vocabulary rejected: " + std::string(tok.status().message()));
  auto serialized = ossgate::text::SerializeVocab(spec);
  if (!serialized.ok()) Die(std::string(serialized.status().message()));
  std::ofstream(out_path, std::ios::binary) << *serialized;
  std::fprintf(stderr, "vocab: %zu tokens (%zu byte-level, %zu merges, %zu special) -> %s\n", spec.tokens.size(),
               token_bytes.size(), spec.merges.size(), std::size(kSpecials), out_path.c_str());
  return 0;
}

// ---------------------------------------------------------------- encoding

int Encode() {
  const std::string out_path = absl::GetFlag(FLAGS_out);
  if (out_path.empty()) Die("encode needs --vocab, --segments and --out");
  auto spec = ossgate::text::LoadVocabFile(absl::GetFlag(FLAGS_vocab));
  if (!spec.ok()) Die(std::string(spec.status().message()));
  auto tok_or = ossgate::text::Tokenizer::Create(*std::move(spec));
  if (!tok_or.ok()) Die(std::string(tok_or.status().message()));
  const ossgate::text::Tokenizer& tok = **tok_or;
  if (tok.vocab_size() > 65535) Die("vocabulary too large for 16-bit token ids");
  const int32_t eot = *tok.SpecialTokenId("<|endoftext|>");
  const int32_t ret = *tok.SpecialTokenId("<|return|>");
  const std::vector<int32_t> final_header = tok.Encode("<|channel|>final<|message|>", /*allow_special=*/true);

  std::vector<uint16_t> tokens;
  std::vector<uint32_t> chat_starts;
  uint64_t text_bytes = 0;
  auto append_text = [&](const std::string& text) {
    const std::vector<int32_t> ids = tok.Encode(text, /*allow_special=*/false);
    if (tok.Decode(ids) != text) Die("round trip failed for: " + text.substr(0, 200));
    text_bytes += text.size();
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  };
  for (const Segment& s : ReadSegments(absl::GetFlag(FLAGS_segments))) {
    if (s.header == "doc") {
      append_text(s.text);
      tokens.push_back(static_cast<uint16_t>(eot));
      continue;
    }
    const std::vector<std::string> parts = absl::StrSplit(s.header, ' ');
    if (parts.size() != 3) Die("bad chat header: " + s.header);
    ossgate::text::Conversation conv;
    conv.reasoning = parts[1] == "high"     ? ossgate::text::ReasoningEffort::kHigh
                     : parts[1] == "medium" ? ossgate::text::ReasoningEffort::kMedium
                                            : ossgate::text::ReasoningEffort::kLow;
    if (parts[2] != "-") conv.current_date = parts[2];
    ossgate::text::Message user;
    user.role = ossgate::text::Role::kUser;
    user.content = s.user;
    conv.messages.push_back(std::move(user));
    auto prompt = ossgate::text::RenderForCompletion(tok, conv);
    if (!prompt.ok()) Die(std::string(prompt.status().message()));
    if (tok.Decode(tok.Encode(s.user, false)) != s.user) Die("round trip failed for: " + s.user);
    chat_starts.push_back(static_cast<uint32_t>(tokens.size()));
    tokens.insert(tokens.end(), prompt->begin(), prompt->end());
    tokens.insert(tokens.end(), final_header.begin(), final_header.end());
    append_text(s.text);
    tokens.push_back(static_cast<uint16_t>(ret));
  }
  std::ofstream out(out_path, std::ios::binary);
  const uint32_t header[4] = {0x4B54534Fu /* "OSTK" */, 1, static_cast<uint32_t>(tokens.size()),
                              static_cast<uint32_t>(chat_starts.size())};
  out.write(reinterpret_cast<const char*>(header), sizeof(header));
  out.write(reinterpret_cast<const char*>(tokens.data()), static_cast<std::streamsize>(tokens.size() * 2));
  if (tokens.size() % 2) out.write("\0\0", 2);
  out.write(reinterpret_cast<const char*>(chat_starts.data()), static_cast<std::streamsize>(chat_starts.size() * 4));
  if (!out) Die("cannot write " + out_path);
  std::fprintf(stderr, "encode: %zu tokens (%.2f text bytes per token), %zu chat records -> %s\n", tokens.size(),
               static_cast<double>(text_bytes) / static_cast<double>(tokens.size()), chat_starts.size(),
               out_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "ossgate-small-data vocab|encode [flags]: BPE vocabulary training and corpus encoding for the bundled small "
      "model (docs/small_model.md)");
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string mode = args.size() > 1 ? args[1] : "";
  if (mode == "vocab") return TrainVocab();
  if (mode == "encode") return Encode();
  Die("usage: ossgate-small-data vocab|encode [flags] (see --help)");
}
