// StopMatcher (stop strings across token boundaries) and SequenceState (stop
// tokens, max_tokens, stop strings, streamed UTF-8) with the tiny byte-level
// vocabulary, whose ids 0..255 are the single bytes.
#include "inference_worker/model/generation.h"

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"

namespace ossgate::model {
namespace {

// True when s is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates,
// at most U+10FFFF); written here so the test does not rely on text/utf8.h.
bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    const unsigned c = p[i];
    int len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (int k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

// Pushes pieces and returns everything emitted (plus Flush()).
std::string PushAll(StopMatcher& m, const std::vector<std::string>& pieces, std::vector<std::string>* outputs = nullptr) {
  std::string all;
  for (const std::string& p : pieces) {
    std::string out = m.Push(p);
    if (outputs) outputs->push_back(out);
    all += out;
  }
  return all + m.Flush();
}

// ---------------------------------------------------------------------------
// StopMatcher

TEST(StopMatcherTest, WithoutStopsEverythingPassesThrough) {
  StopMatcher m({});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_EQ(m.Push("日本"), "日本");
  EXPECT_EQ(m.Flush(), "");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, EmptyStopStringsAreIgnored) {
  StopMatcher m({"", ""});
  EXPECT_EQ(m.Push("abc"), "abc");
  EXPECT_FALSE(m.matched());
}

TEST(StopMatcherTest, StopStringWithinOnePush) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("abcENDxyz"), "abc");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Push("more"), "");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopStringSplitAcrossPushes) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("abcE"), "abc");  // "E" might start END: held back
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("N"), "");
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("Dxyz"), "");
  EXPECT_TRUE(m.matched());
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, HeldPrefixIsReleasedWhenItStopsMatching) {
  StopMatcher m({"END"});
  EXPECT_EQ(m.Push("abEN"), "ab");
  EXPECT_EQ(m.Push("x"), "ENx");
  EXPECT_FALSE(m.matched());
  EXPECT_EQ(m.Push("E"), "");
  EXPECT_EQ(m.Flush(), "E");  // end of generation: the held text is real text
}

TEST(StopMatcherTest, EarliestOfSeveralStopStringsWins) {
  StopMatcher m({"bar", "foo"});
  EXPECT_EQ(m.Push("xfoo bar"), "x");
  EXPECT_TRUE(m.matched());
  StopMatcher m2({"bar", "foo"});
  EXPECT_EQ(PushAll(m2, {"a", "b", "ba", "r", "foo"}), "ab");
  EXPECT_TRUE(m2.matched());
}

TEST(StopMatcherTest, OverlappingPrefixes) {
  // "xy" is held as a prefix of "xyz", then completes "yq" instead.
  StopMatcher a({"xyz", "yq"});
  EXPECT_EQ(a.Push("x"), "");
  EXPECT_EQ(a.Push("y"), "");
  EXPECT_EQ(a.Push("q"), "x");
  EXPECT_TRUE(a.matched());
  // A stop string that overlaps itself: "aaab" contains "aab" at 1.
  StopMatcher b({"aab"});
  EXPECT_EQ(PushAll(b, {"a", "a", "a", "b"}), "a");
  EXPECT_TRUE(b.matched());
  // A held prefix of a long stop string does not delay a short one that
  // completes first: "c" is held for "caé", then "a" matches at 1.
  StopMatcher d({"caé", "a"});
  EXPECT_EQ(d.Push("c"), "");
  EXPECT_EQ(d.Push("a"), "c");
  EXPECT_TRUE(d.matched());
  // One stop string a prefix of another: the shorter matches first.
  StopMatcher c({"<|end|>", "<|e"});
  EXPECT_EQ(PushAll(c, {"hi<", "|", "end|>"}), "hi");
  EXPECT_TRUE(c.matched());
}

TEST(StopMatcherTest, RandomTextAndStopsMatchAFindReference) {
  // Random text from a small alphabet (ASCII and multi-byte code points),
  // pushed one code point at a time; stops are random code-point substrings.
  const std::vector<std::string> alphabet = {"a", "b", "c", "é", "日", "😀"};
  for (uint64_t trial = 0; trial < 500; ++trial) {
    std::mt19937_64 rng(trial);
    std::vector<std::string> pieces;
    std::string text;
    const int len = 1 + static_cast<int>(rng() % 30);
    for (int i = 0; i < len; ++i) {
      pieces.push_back(alphabet[rng() % alphabet.size()]);
      text += pieces.back();
    }
    std::vector<std::string> stops;
    const int n_stops = 1 + static_cast<int>(rng() % 3);
    for (int s = 0; s < n_stops; ++s) {
      std::string stop;
      const int slen = 1 + static_cast<int>(rng() % 4);
      for (int i = 0; i < slen; ++i) stop += alphabet[rng() % alphabet.size()];
      stops.push_back(stop);
    }
    // Generation stops at the first piece after which the text so far
    // contains a stop string; the output is that text cut at the earliest
    // occurrence. (A longer stop string that might still have completed at
    // an earlier position does not delay the stop.)
    size_t first = std::string::npos;
    std::string so_far;
    for (const std::string& p : pieces) {
      so_far += p;
      for (const std::string& s : stops) first = std::min(first, so_far.find(s));
      if (first != std::string::npos) break;
    }
    const std::string want = first == std::string::npos ? text : so_far.substr(0, first);

    StopMatcher m(stops);
    std::vector<std::string> outputs;
    const std::string got = PushAll(m, pieces, &outputs);
    std::string desc = "trial " + std::to_string(trial) + ": text '" + text + "' pieces";
    for (const std::string& p : pieces) desc += " '" + p + "'";
    desc += " stops";
    for (const std::string& s : stops) desc += " '" + s + "'";
    EXPECT_EQ(got, want) << desc;
    EXPECT_EQ(m.matched(), first != std::string::npos) << desc;
    for (const std::string& o : outputs) EXPECT_TRUE(IsValidUtf8(o)) << desc;
  }
}

TEST(StopMatcherTest, NeverSplitsAUtf8Sequence) {
  // A (malformed) stop string that begins inside a code point: "日" is
  // E6 97 A5, so its last two bytes could start the stop. The held-back
  // suffix would cut the character; the matcher must hold all of it.
  StopMatcher m({"\x97\xA5!"});
  const std::string first = m.Push("a日");
  EXPECT_EQ(first, "a");
  EXPECT_TRUE(IsValidUtf8(first));
  const std::string second = m.Push("?");
  EXPECT_EQ(second, "日?");
  EXPECT_TRUE(IsValidUtf8(second));
  EXPECT_FALSE(m.matched());
  // Valid multi-byte stop strings held across pushes.
  StopMatcher j({"日本語"});
  std::vector<std::string> outs;
  EXPECT_EQ(PushAll(j, {"é", "日", "本", "x", "日", "本", "語", "z"}, &outs), "é日本x");
  EXPECT_TRUE(j.matched());
  for (const std::string& o : outs) EXPECT_TRUE(IsValidUtf8(o)) << o;
}

// ---------------------------------------------------------------------------
// SequenceState

class SequenceStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto t = text::Tokenizer::Create(text::MakeTinyVocab());
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = *std::move(t);
    vocab_ = tokenizer_->vocab_size();
    auto ret = tokenizer_->SpecialTokenId("<|return|>");
    ASSERT_TRUE(ret.has_value());
    return_id_ = *ret;
  }

  // Logits under which greedy sampling picks `token`.
  std::vector<float> Force(int32_t token) const {
    std::vector<float> l(vocab_, 0.0f);
    l[token] = 10.0f;
    return l;
  }

  static GenerationParams Greedy(int max_tokens) {
    GenerationParams p;
    p.sampling.temperature = 0.0f;
    p.max_tokens = max_tokens;
    return p;
  }

  // Feeds the tokens until the state finishes; returns the concatenated text.
  std::string Run(SequenceState& s, const std::vector<int32_t>& tokens, std::vector<SequenceState::StepResult>* steps) {
    std::string text;
    for (int32_t t : tokens) {
      std::vector<float> l = Force(t);
      SequenceState::StepResult r = s.Step(l);
      EXPECT_EQ(r.token, t);
      EXPECT_TRUE(IsValidUtf8(r.text));
      text += r.text;
      steps->push_back(r);
      if (r.finish != FinishReason::kNone) break;
    }
    return text;
  }

  static std::vector<int32_t> Bytes(const std::string& s) {
    std::vector<int32_t> ids;
    for (unsigned char c : s) ids.push_back(c);
    return ids;
  }

  std::unique_ptr<text::Tokenizer> tokenizer_;
  int32_t vocab_ = 0;
  int32_t return_id_ = -1;
};

TEST_F(SequenceStateTest, TinyVocabularyBytesAreTheirOwnIds) {
  // The premise of the tests below.
  EXPECT_EQ(tokenizer_->TokenBytes('h'), "h");
  EXPECT_EQ(tokenizer_->TokenBytes(0xE6), "\xE6");
  EXPECT_GT(vocab_, 256);
}

TEST_F(SequenceStateTest, StopTokenEndsWithStopAndItsTextIsNotEmitted) {
  GenerationParams p = Greedy(100);
  p.stop_token_ids = {return_id_, '!'};
  SequenceState s(*tokenizer_, Bytes("hi"), p);
  std::vector<SequenceState::StepResult> steps;
  const std::string text = Run(s, {'o', 'k', '!', 'z'}, &steps);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(text, "ok");
  EXPECT_EQ(steps[0].finish, FinishReason::kNone);
  EXPECT_EQ(steps[2].finish, FinishReason::kStop);
  EXPECT_EQ(steps[2].text, "");
  EXPECT_TRUE(s.finished());
  EXPECT_EQ(s.finish_reason(), FinishReason::kStop);
  EXPECT_EQ(s.generated(), (std::vector<int32_t>{'o', 'k', '!'}));
  EXPECT_EQ(s.prompt(), Bytes("hi"));

  SequenceState special(*tokenizer_, Bytes("hi"), p);
  steps.clear();
  EXPECT_EQ(Run(special, {'a', return_id_}, &steps), "a");  // no "<|return|>" in the text
  EXPECT_EQ(special.finish_reason(), FinishReason::kStop);
}

// A row the sampler refuses (NaN) records nothing: the token is kNoToken
// with no finish reason, for the caller to end the request with an error.
TEST_F(SequenceStateTest, ARefusedRowRecordsNothing) {
  SequenceState s(*tokenizer_, Bytes("x"), Greedy(10));
  std::vector<float> l = Force('a');
  l[7] = std::numeric_limits<float>::quiet_NaN();
  const SequenceState::StepResult r = s.Step(l);
  EXPECT_EQ(r.token, kNoToken);
  EXPECT_EQ(r.finish, FinishReason::kNone);
  EXPECT_EQ(r.text, "");
  EXPECT_TRUE(s.generated().empty());
  EXPECT_FALSE(s.finished());
  EXPECT_EQ(s.Accept(kNoToken).token, kNoToken);
  EXPECT_TRUE(s.generated().empty());
  l = Force('b');
  EXPECT_EQ(s.Step(l).token, 'b');
  EXPECT_EQ(s.generated(), (std::vector<int32_t>{'b'}));
}

TEST_F(SequenceStateTest, StepAfterFinishReturnsTheReasonAndNoToken) {
  GenerationParams p = Greedy(1);
  SequenceState s(*tokenizer_, Bytes("x"), p);
  std::vector<float> l = Force('a');
  EXPECT_EQ(s.Step(l).finish, FinishReason::kLength);
  l = Force('b');
  const SequenceState::StepResult again = s.Step(l);
  EXPECT_EQ(again.finish, FinishReason::kLength);
  EXPECT_EQ(again.token, -1);
  EXPECT_EQ(again.text, "");
  EXPECT_EQ(s.generated().size(), 1u);
}

TEST_F(SequenceStateTest, MaxTokensEndsWithLength) {
  SequenceState s(*tokenizer_, Bytes("p"), Greedy(3));
  std::vector<SequenceState::StepResult> steps;
  const std::string text = Run(s, {'a', 'b', 'c', 'd'}, &steps);
  ASSERT_EQ(steps.size(), 3u);
  EXPECT_EQ(text, "abc");
  EXPECT_EQ(steps[1].finish, FinishReason::kNone);
  EXPECT_EQ(steps[2].finish, FinishReason::kLength);
  EXPECT_EQ(s.generated().size(), 3u);
}

TEST_F(SequenceStateTest, StopStringCutsTheText) {
  GenerationParams p = Greedy(100);
  p.stop_strings = {"lo"};
  SequenceState s(*tokenizer_, Bytes("p"), p);
  std::vector<SequenceState::StepResult> steps;
  const std::string text = Run(s, Bytes("hello world"), &steps);
  EXPECT_EQ(text, "hel");
  ASSERT_EQ(steps.size(), 5u);  // ends on the token that completes the stop string
  EXPECT_EQ(steps.back().finish, FinishReason::kStop);
  EXPECT_EQ(steps[2].text, "");   // "l" held back as a possible start of "lo"
  EXPECT_EQ(steps[3].text, "l");  // released when the next "l" takes its place
}

TEST_F(SequenceStateTest, HeldTextIsReleasedWhenAStopTokenEnds) {
  GenerationParams p = Greedy(100);
  p.stop_strings = {"xyz"};
  p.stop_token_ids = {return_id_};
  SequenceState s(*tokenizer_, Bytes("p"), p);
  std::vector<SequenceState::StepResult> steps;
  EXPECT_EQ(Run(s, {'a', 'x', return_id_}, &steps), "ax");
  EXPECT_EQ(steps[1].text, "");
  EXPECT_EQ(steps[2].text, "x");
  EXPECT_EQ(s.finish_reason(), FinishReason::kStop);
}

TEST_F(SequenceStateTest, HeldTextIsReleasedAtMaxTokens) {
  GenerationParams p = Greedy(2);
  p.stop_strings = {"xyz"};
  SequenceState s(*tokenizer_, Bytes("p"), p);
  std::vector<SequenceState::StepResult> steps;
  EXPECT_EQ(Run(s, {'a', 'x'}, &steps), "ax");
  EXPECT_EQ(s.finish_reason(), FinishReason::kLength);
}

TEST_F(SequenceStateTest, Utf8IsStreamedOnlyWhenComplete) {
  SequenceState s(*tokenizer_, Bytes("p"), Greedy(100));
  std::vector<SequenceState::StepResult> steps;
  // "日" = E6 97 A5 as three byte tokens, then "!".
  Run(s, {0xE6, 0x97, 0xA5, '!'}, &steps);
  ASSERT_EQ(steps.size(), 4u);
  EXPECT_EQ(steps[0].text, "");
  EXPECT_EQ(steps[1].text, "");
  EXPECT_EQ(steps[2].text, "日");
  EXPECT_EQ(steps[3].text, "!");
}

TEST_F(SequenceStateTest, IncompleteUtf8AtMaxTokensBecomesReplacementChar) {
  SequenceState s(*tokenizer_, Bytes("p"), Greedy(2));
  std::vector<SequenceState::StepResult> steps;
  const std::string text = Run(s, {'a', 0xE6}, &steps);
  EXPECT_EQ(text, "a\xEF\xBF\xBD");  // U+FFFD
  EXPECT_EQ(s.finish_reason(), FinishReason::kLength);
}

TEST_F(SequenceStateTest, StopStringMatchingAtTheLastAllowedTokenIsStop) {
  GenerationParams p = Greedy(3);
  p.stop_strings = {"bc"};
  SequenceState s(*tokenizer_, Bytes("p"), p);
  std::vector<SequenceState::StepResult> steps;
  EXPECT_EQ(Run(s, {'a', 'b', 'c'}, &steps), "a");
  EXPECT_EQ(s.finish_reason(), FinishReason::kStop);
}

TEST_F(SequenceStateTest, PenaltiesCountThePromptTokens) {
  // 'a' has the highest logit but is in the prompt; the presence penalty
  // pushes the greedy choice to 'b'.
  GenerationParams p = Greedy(5);
  p.sampling.presence_penalty = 3.0f;
  SequenceState s(*tokenizer_, Bytes("a"), p);
  std::vector<float> l(vocab_, 0.0f);
  l['a'] = 5.0f;
  l['b'] = 4.0f;
  EXPECT_EQ(s.Step(l).token, 'b');
  // And generated tokens count too: now 'b' is penalised as well.
  std::vector<float> l2(vocab_, 0.0f);
  l2['a'] = 5.0f;
  l2['b'] = 4.0f;
  l2['c'] = 2.5f;
  EXPECT_EQ(s.Step(l2).token, 'c');
}

TEST_F(SequenceStateTest, SameSeedGivesTheSameTokensAndStepAdvancesTheRng) {
  GenerationParams p;
  p.sampling.temperature = 1.0f;
  p.sampling.seed = 99;
  p.max_tokens = 40;
  std::vector<float> flat(vocab_, 0.0f);  // uniform over the vocabulary
  SequenceState a(*tokenizer_, Bytes("p"), p), b(*tokenizer_, Bytes("p"), p);
  std::set<int32_t> distinct;
  for (int i = 0; i < 40; ++i) {
    std::vector<float> la = flat, lb = flat;
    const int32_t ta = a.Step(la).token, tb = b.Step(lb).token;
    EXPECT_EQ(ta, tb) << "step " << i;
    distinct.insert(ta);
  }
  EXPECT_GT(distinct.size(), 30u);  // not the same draw every step
}

// Backend::ForwardSample's contract with the engine: NextSampling() is what
// Step passes to the sampler (params, and the number of tokens generated so
// far as the RNG counter), and Accept() of that token gives Step's result.
TEST_F(SequenceStateTest, NextSamplingAndAcceptGiveWhatStepGives) {
  GenerationParams p;
  p.sampling.temperature = 0.9f;
  p.sampling.top_k = 50;
  p.sampling.top_p = 0.95f;
  p.sampling.seed = 4242;
  p.max_tokens = 30;
  p.stop_strings = {"xyz"};
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  SequenceState stepped(*tokenizer_, Bytes("q"), p), accepted(*tokenizer_, Bytes("q"), p);
  EXPECT_FALSE(accepted.NeedsHostLogits());
  for (int i = 0; !stepped.finished(); ++i) {
    std::vector<float> l(vocab_);
    for (float& x : l) x = dist(rng);
    const StepSampling next = accepted.NextSampling();
    EXPECT_EQ(next.step, static_cast<uint64_t>(i));
    EXPECT_EQ(next.params.seed, 4242u);
    std::vector<float> l2 = l;
    const int32_t token = Sampler(next.params).Sample(l2, {}, next.step);
    const SequenceState::StepResult a = stepped.Step(l);
    const SequenceState::StepResult b = accepted.Accept(token);
    EXPECT_EQ(a.token, b.token) << "step " << i;
    EXPECT_EQ(a.text, b.text) << "step " << i;
    EXPECT_EQ(a.finish, b.finish) << "step " << i;
  }
  EXPECT_EQ(stepped.generated(), accepted.generated());
  EXPECT_EQ(stepped.generated().size(), 30u);
  EXPECT_EQ(accepted.finish_reason(), FinishReason::kLength);
  // After the end Accept takes no token, as Step.
  EXPECT_EQ(accepted.Accept('a').token, -1);
  EXPECT_EQ(accepted.generated().size(), 30u);
}

TEST_F(SequenceStateTest, PenaltiesNeedHostLogits) {
  for (int which = 0; which < 3; ++which) {
    GenerationParams p;
    if (which == 0) p.sampling.repetition_penalty = 1.2f;
    if (which == 1) p.sampling.presence_penalty = 0.1f;
    if (which == 2) p.sampling.frequency_penalty = 0.1f;
    EXPECT_TRUE(SequenceState(*tokenizer_, Bytes("q"), p).NeedsHostLogits()) << which;
  }
}

// Harmony mode with the tokens of a tool call forced: every step names the
// header of the message its text belongs to, and <|call|> after a message to
// functions.* ends the sequence with kToolCall; other stops stay kStop.
TEST_F(SequenceStateTest, HarmonyToolCallEndsWithToolCallAndTextCarriesItsRecipient) {
  GenerationParams p = Greedy(200);
  p.harmony = true;
  SequenceState s(*tokenizer_, Bytes("x"), p);
  std::vector<SequenceState::StepResult> steps;
  const std::vector<int32_t> ids = tokenizer_->Encode(
      "<|channel|>commentary<|message|>Checking.<|end|><|start|>assistant<|channel|>commentary "
      "to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Oslo\"}<|call|>",
      /*allow_special=*/true);
  Run(s, ids, &steps);
  ASSERT_EQ(steps.size(), ids.size());
  EXPECT_EQ(s.finish_reason(), FinishReason::kToolCall);
  EXPECT_EQ(steps.back().finish, FinishReason::kToolCall);
  std::string preamble, args;
  for (const SequenceState::StepResult& r : steps) {
    if (r.text.empty()) continue;
    EXPECT_EQ(r.channel, "commentary");
    if (r.recipient.empty()) {
      EXPECT_EQ(r.content_type, "");
      preamble += r.text;
    } else {
      EXPECT_EQ(r.recipient, "functions.get_weather");
      EXPECT_EQ(r.content_type, "json");
      args += r.text;
    }
  }
  EXPECT_EQ(preamble, "Checking.");
  EXPECT_EQ(args, "{\"city\":\"Oslo\"}");

  for (const char* other : {"<|channel|>final<|message|>Done.<|return|>",
                            "<|channel|>commentary to=browser.search<|message|>{}<|call|>"}) {
    SequenceState t(*tokenizer_, Bytes("x"), p);
    steps.clear();
    Run(t, tokenizer_->Encode(other, /*allow_special=*/true), &steps);
    EXPECT_EQ(t.finish_reason(), FinishReason::kStop) << other;
  }
  EXPECT_STREQ(FinishReasonName(FinishReason::kToolCall), "tool_calls");
}

// SentencePiece's "▁" before a chat answer's first word is the segment
// prefix, not text; after a text prompt it is a real space.
TEST(SentencePieceSequenceTest, PrefixSpaceDependsOnThePromptsLastToken) {
  absl::StatusOr<text::VocabSpec> spec = text::MakeTinyFamilyVocab("phi3");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::unique_ptr<text::Tokenizer>> tok = text::Tokenizer::Create(*spec);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> the = (*tok)->Encode("the", false);  // "▁the"
  ASSERT_EQ(the.size(), 1u);
  GenerationParams params;
  params.max_tokens = 4;
  const int32_t assistant = *(*tok)->SpecialTokenId("<|assistant|>");
  SequenceState chat(**tok, {assistant}, params);
  EXPECT_EQ(chat.Accept(the[0]).text, "the");
  EXPECT_EQ(chat.Accept(the[0]).text, " the");
  SequenceState completion(**tok, the, params);
  EXPECT_EQ(completion.Accept(the[0]).text, " the");
}

}  // namespace
}  // namespace ossgate::model
