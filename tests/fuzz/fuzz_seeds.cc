// Writes the seed corpora of the fuzz targets (committed under
// tests/fuzz/corpus/<target>/):
//   fuzz_seeds <corpus dir> [o200k vocabulary file]
// Seeds are small valid inputs that take a target past its first checks: a
// complete tiny model file, tokens of a real harmony answer, a signed
// approval token, well-formed requests of every kind. Deterministic, so
// rerunning it reproduces the committed files. (GGUF seeds have no .gguf
// suffix: the repository ignores *.gguf outside the fixtures.)
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/text/vocab_file.h"
#include "ossgate/inference/v1/inference.pb.h"
#include "ossgate/provenance/v1/provenance.pb.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"
#include "tests/fuzz/fuzz_keys.h"
#include "tools/make_model/random_model.h"

namespace {

using namespace ossgate;

std::string g_root;

void Fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_seeds: %s\n", what.c_str());
  std::exit(1);
}

std::string Dir(const std::string& target) {
  const std::string dir = g_root + "/" + target;
  std::filesystem::create_directories(dir);
  return dir;
}

void Write(const std::string& target, const std::string& name, const std::string& bytes) {
  const std::string path = Dir(target) + "/" + name;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) Fail("cannot write " + path);
}

// A target input: a selector byte, then the bytes.
std::string Prefixed(int selector, std::string_view rest) {
  std::string out(1, static_cast<char>(selector));
  out.append(rest);
  return out;
}

// 256 single-byte tokens and the harmony special tokens, no merges: the
// smallest vocabulary Tokenizer::Create accepts that the harmony format needs.
text::VocabSpec ByteVocab() {
  text::VocabSpec tiny = text::MakeTinyVocab();
  text::VocabSpec v;
  for (int i = 0; i < 256; ++i) {
    v.tokens.push_back(tiny.tokens[i]);
    v.token_types.push_back(tiny.token_types[i]);
  }
  for (size_t i = 0; i < tiny.tokens.size(); ++i) {
    if (tiny.token_types[i] == static_cast<int32_t>(text::TokenType::kControl)) {
      v.tokens.push_back(tiny.tokens[i]);
      v.token_types.push_back(tiny.token_types[i]);
    }
  }
  return v;
}

void GgufSeeds() {
  const std::string target = "gguf_parse";
  {
    // A complete model: config, every tensor and a tokenizer.
    tools::RandomModelSpec spec;
    if (!tools::ApplyPreset("tiny", &spec.config).ok()) Fail("preset");
    spec.config.n_layers = 1;
    spec.config.d_model = 32;
    spec.config.n_heads = 2;
    spec.config.n_kv_heads = 1;
    spec.config.head_dim = 16;
    spec.config.n_experts = 2;
    spec.config.n_experts_used = 1;
    spec.config.d_ff = 32;
    spec.config.context_length = 256;
    spec.config.sliding_window = 16;
    spec.config.rope_original_context = 64;
    spec.threads = 1;
    spec.name = "fuzz-seed";
    const std::string path = Dir(target) + "/seed_model";
    if (auto s = tools::WriteRandomModel(spec, ByteVocab(), path); !s.ok()) Fail(std::string(s.message()));
  }
  // The dense families: qwen2 (biases, tied embeddings) and phi3 (fused
  // attn_qkv and ffn_up, window), one layer each.
  for (const std::string family : {"qwen2", "phi3"}) {
    tools::RandomModelSpec spec;
    if (!tools::ApplyPreset(family + "-tiny", &spec.config).ok()) Fail("preset");
    spec.config.n_layers = 1;
    spec.config.d_model = 32;
    spec.config.n_heads = 2;
    spec.config.n_kv_heads = 1;
    spec.config.head_dim = 16;
    spec.config.d_ff = 32;
    spec.config.context_length = 256;
    if (family == "phi3") spec.config.sliding_window = 16;
    spec.threads = 1;
    spec.name = "fuzz-seed-" + family;
    const std::string path = Dir(target) + "/seed_model_" + family;
    if (auto s = tools::WriteRandomModel(spec, ByteVocab(), path); !s.ok()) Fail(std::string(s.message()));
  }
  auto write = [&](gguf::GgufWriter& w, const std::string& name) {
    if (auto s = w.Begin(Dir(target) + "/" + name); !s.ok()) Fail(std::string(s.message()));
    if (auto s = w.Finish(); !s.ok()) Fail(std::string(s.message()));
  };
  {
    // Tokenizer metadata only, with merges.
    const text::VocabSpec v = text::MakeTinyVocab();
    gguf::GgufWriter w;
    w.SetString("general.architecture", "gpt-oss");
    w.SetString("tokenizer.ggml.model", "gpt2");
    w.SetString("tokenizer.ggml.pre", "gpt-4o");
    w.SetStringArray("tokenizer.ggml.tokens", v.tokens);
    w.SetStringArray("tokenizer.ggml.merges", v.merges);
    w.SetInt32Array("tokenizer.ggml.token_type", std::vector<int32_t>(v.token_types.begin(), v.token_types.end()));
    write(w, "seed_tokenizer");
  }
  {
    gguf::GgufWriter w(64);
    w.SetBool("b", true);
    w.SetUint64("u", 1);
    w.SetFloat32Array("f", {1.0f, -2.5f});
    auto n = w.AddTensor("h", gguf::GgmlType::kF16, {3, 2});
    auto m = w.AddTensor("bf", gguf::GgmlType::kBF16, {5});
    if (!n.ok() || !m.ok()) Fail("AddTensor");
    if (auto s = w.Begin(Dir(target) + "/seed_align64"); !s.ok()) Fail(std::string(s.message()));
    const std::vector<uint8_t> a(*n, 0x11), b(*m, 0x22);
    if (!w.WriteTensorData(a).ok() || !w.WriteTensorData(b).ok() || !w.Finish().ok()) Fail("tensor data");
  }
  {
    // The k-quants: a Q4_K and a Q6_K matrix of two rows each, quantized
    // from a ramp (finite scales, every field of the blocks in use).
    gguf::GgufWriter w;
    auto q4 = w.AddTensor("q4k", gguf::GgmlType::kQ4_K, {256, 2});
    auto q6 = w.AddTensor("q6k", gguf::GgmlType::kQ6_K, {256, 2});
    if (!q4.ok() || !q6.ok()) Fail("AddTensor");
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 97) - 40) / 16.0f;
    std::vector<uint8_t> a(*q4), b(*q6);
    gguf::QuantizeRow(gguf::GgmlType::kQ4_K, x.data(), a.data(), 512);
    gguf::QuantizeRow(gguf::GgmlType::kQ6_K, x.data(), b.data(), 512);
    if (auto s = w.Begin(Dir(target) + "/seed_kquants"); !s.ok()) Fail(std::string(s.message()));
    if (!w.WriteTensorData(a).ok() || !w.WriteTensorData(b).ok() || !w.Finish().ok()) Fail("tensor data");
  }
  {
    // The 5-bit types of the Q4_K_M files (Q5_0, Q5_1 and Q5_K), one
    // two-row matrix each, from the same ramp.
    gguf::GgufWriter w;
    const std::vector<gguf::GgmlType> types = {gguf::GgmlType::kQ5_0, gguf::GgmlType::kQ5_1, gguf::GgmlType::kQ5_K};
    std::vector<uint64_t> sizes;
    for (gguf::GgmlType t : types) {
      auto n = w.AddTensor(std::string("q5_") + std::to_string(static_cast<int>(t)), t, {256, 2});
      if (!n.ok()) Fail("AddTensor");
      sizes.push_back(*n);
    }
    std::vector<float> x(512);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>(i % 89) - 44) / 8.0f;
    if (auto s = w.Begin(Dir(target) + "/seed_q5"); !s.ok()) Fail(std::string(s.message()));
    for (size_t i = 0; i < types.size(); ++i) {
      std::vector<uint8_t> bytes(sizes[i]);
      gguf::QuantizeRow(types[i], x.data(), bytes.data(), 512);
      if (!w.WriteTensorData(bytes).ok()) Fail("tensor data");
    }
    if (!w.Finish().ok()) Fail("finish");
  }
}

// Token stream in the harmony target's encoding: a special token as its
// index byte (the target's list: 3 out-of-range ids, then each harmony
// special twice), anything else as 3 bytes >= 0x40 << 16.
std::string HarmonyStream(const text::Tokenizer& tok, const std::string& text) {
  const std::vector<std::string> specials = {"<|start|>", "<|end|>",    "<|message|>",   "<|channel|>",
                                             "<|return|>", "<|call|>", "<|constrain|>", "<|endoftext|>"};
  std::string out;
  for (int32_t id : tok.Encode(text, true)) {
    bool special = false;
    for (size_t i = 0; i < specials.size(); ++i) {
      if (tok.SpecialTokenId(specials[i]) == id) {
        out.push_back(static_cast<char>(3 + 2 * i));
        special = true;
      }
    }
    if (special) continue;
    const uint32_t v = static_cast<uint32_t>(id) + (0x40u << 16);
    out.push_back(static_cast<char>(v >> 16));
    out.push_back(static_cast<char>((v >> 8) & 0xff));
    out.push_back(static_cast<char>(v & 0xff));
  }
  return out;
}

void TextSeeds(const text::Tokenizer& tiny, const text::Tokenizer* o200k) {
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"english", "The quick brown fox jumps over the lazy dog. It's 2026!\n"},
      {"harmony", "<|start|>user<|message|>What is 2+2?<|end|><|start|>assistant"},
      {"multilingual", "Grüße, 世界! Привет. 🙂 ﷽ naïve café\t\r\n  spaces"},
      {"invalid_utf8", std::string("ok \xff\xfe bad \xe2\x82 cut \xed\xa0\x80 surrogate", 33)},
  };
  for (int vocab = 0; vocab < (o200k ? 2 : 1); ++vocab) {
    for (const auto& [name, text] : texts) {
      for (int special = 0; special < 2; ++special) {
        const char mode = static_cast<char>((vocab ? 2 : 0) | special);
        Write("tokenizer", absl::StrCat("seed_", vocab ? "o200k_" : "tiny_", name, special ? "_special" : ""),
              Prefixed(mode, text));
      }
    }
    // Token ids: the encoding of a harmony prompt, plus out-of-range ids.
    const text::Tokenizer& tok = vocab ? *o200k : tiny;
    std::vector<int32_t> ids = tok.Encode(texts[1].second + texts[2].second, true);
    ids.push_back(-1);
    ids.push_back(tok.vocab_size());
    Write("tokenizer", absl::StrCat("seed_", vocab ? "o200k" : "tiny", "_ids"),
          Prefixed((vocab ? 2 : 0) | 4, std::string_view(reinterpret_cast<const char*>(ids.data()), ids.size() * 4)));

    const std::string answer =
        "<|channel|>analysis<|message|>The user asks 2+2. Easy.<|end|><|start|>assistant<|channel|>commentary "
        "to=functions.calc <|constrain|>json<|message|>{\"expr\":\"2+2\"}<|call|>";
    const std::string final_answer =
        "<|channel|>final<|message|>2 + 2 = 4 — vier, четыре 🙂<|return|>";
    Write("harmony_parser", absl::StrCat("seed_", vocab ? "o200k" : "tiny", "_tool_call"),
          Prefixed(vocab, HarmonyStream(tok, answer)));
    Write("harmony_parser", absl::StrCat("seed_", vocab ? "o200k" : "tiny", "_final"),
          Prefixed(vocab, HarmonyStream(tok, final_answer)));
  }
}

void ToolSchemaSeeds() {
  const std::vector<std::pair<std::string, std::string>> schemas = {
      {"weather", R"({"type": "object", "properties": {"location": {"type": "string", "description": "The city"},)"
                  R"( "format": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"}},)"
                  R"( "required": ["location"]})"},
      {"kitchensink",
       R"({"description": "params object", "type": "object", "properties": {"string": {"type": "string", )"
       R"("title": "STRING", "description": "A string", "examples": ["hello", "world"]}, "string_nullable": )"
       R"({"type": "string", "nullable": true, "default": "the default"}, "oneof_string_or_number": {"oneOf": )"
       R"([{"type": "string", "default": "x"}, {"type": "number", "description": "n"}], "description": "a oneof", )"
       R"("default": 20}}})"},
      {"nested", R"({"type": "object", "properties": {"a": {"type": "array", "items": {"type": "object", )"
                 R"("properties": {"b": {"type": ["integer", "null"]}, "c": {"$ref": "#/$defs/C"}}}}}})"},
      {"top_oneof", R"({"oneOf": [{"type": "object", "properties": {}}, {"anyOf": [{"type": "string"}]}]})"},
      {"empty", ""},
  };
  for (const auto& [name, schema] : schemas) Write("tool_schema", "seed_" + name, schema);
}

void PasetoSeeds() {
  const std::string target = "paseto_token";
  token::ApprovalClaims c;
  c.issuer = fuzz::kFuzzIssuer;
  c.worker_id = fuzz::kFuzzWorkerId;
  c.token_id = "00112233445566778899aabbccddeeff";
  c.model_sha256 = token::Sha256Hex("model");
  c.model_size = 12345;
  c.source_uri = "hf://openai/gpt-oss-20b/gpt-oss-20b-MXFP4.gguf";
  c.model_name = "gpt-oss-20b";
  c.model_family = "gpt-oss";
  c.policy_version = 9;
  c.log_index = 42;
  c.log_origin = "ossgate.local/provenance";
  c.issued_at = fuzz::FuzzNow() - absl::Seconds(60);
  c.not_before = c.issued_at;
  c.expires_at = c.issued_at + absl::Minutes(5);
  token::ApprovalTokenSigner signer(std::make_shared<const token::Ed25519PrivateKey>(
      *token::Ed25519PrivateKey::FromSeed(fuzz::FuzzTokenKey().Seed())));
  auto signed_token = signer.Sign(c);
  if (!signed_token.ok()) Fail(std::string(signed_token.status().message()));
  c.key_id = signer.key_id();
  const std::string claims = token::EncodeApprovalClaims(c);
  Write(target, "seed_token", Prefixed(0, *signed_token));
  Write(target, "seed_claims", Prefixed(1, claims));
  Write(target, "seed_claims_footer",
        Prefixed(2, absl::StrCat(claims, std::string(1, '\0'), "{\"kid\":\"", signer.key_id(), "\"}")));
  Write(target, "seed_json", Prefixed(3, "{\"a\":[1,-2.5e3,true,null,{\"b\":\"\\u00e9\\ud83d\\ude00\"}]}"));
  Write(target, "seed_time", Prefixed(4, "2026-01-01T00:00:00.123+05:30"));
}

void UriSeeds() {
  const std::string target = "model_uri";
  const std::vector<std::string> uris = {
      "hf://openai/gpt-oss-20b@0123456789abcdef0123456789abcdef01234567/gpt-oss-20b-MXFP4.gguf",
      "ossgate://bundled/tiny.gguf", "file:///srv/models/a/b.gguf", "upload://user/x.gguf",
      "https://example.com/m.gguf", "models/sub/a.gguf", "worker-1", "A printable description."};
  for (size_t i = 0; i < uris.size(); ++i) Write(target, absl::StrCat("seed_", i), uris[i]);
}

void WorkerSeeds() {
  namespace pb = ::ossgate::inference::v1;
  const std::string target = "worker_request";
  auto write = [&](const std::string& name, char model, const pb::GenerateRequest& r) {
    Write(target, name, Prefixed(model, r.SerializeAsString()));
  };
  pb::GenerateRequest text;
  text.set_request_id("req-1");
  text.set_text("Hello <|start|> world");
  text.set_allow_special_tokens(true);
  text.mutable_sampling()->set_temperature(0.7f);
  text.mutable_sampling()->set_top_p(0.9f);
  text.mutable_sampling()->set_top_k(40);
  text.mutable_sampling()->set_seed(7);
  text.set_max_tokens(16);
  text.add_stop("\n\n");
  text.add_stop_token_ids(3);
  text.set_logprobs(5);
  write("seed_text", 0, text);
  write("seed_text_o200k_short", 3, text);
  pb::GenerateRequest ids;
  ids.set_request_id("ids:2");
  for (int i : {1, 2, 3, 300}) ids.mutable_token_ids()->add_ids(i);
  ids.mutable_sampling()->set_repetition_penalty(1.1f);
  ids.mutable_sampling()->set_presence_penalty(0.5f);
  ids.mutable_sampling()->set_frequency_penalty(-0.5f);
  ids.mutable_sampling()->set_min_p(0.05f);
  ids.set_ignore_eos(true);
  write("seed_token_ids", 0, ids);
  pb::GenerateRequest chat;
  chat.set_request_id("chat.3");
  pb::Conversation* conv = chat.mutable_conversation();
  conv->set_developer_instructions("Answer briefly.");
  conv->set_reasoning_effort(pb::REASONING_EFFORT_HIGH);
  conv->set_current_date("2026-01-01");
  auto* m1 = conv->add_messages();
  m1->set_role(pb::ROLE_USER);
  m1->set_content("What's the weather in Paris?");
  auto* m2 = conv->add_messages();
  m2->set_role(pb::ROLE_ASSISTANT);
  m2->set_channel("commentary");
  m2->set_recipient("functions.get_weather");
  m2->set_content_type("json");
  m2->set_content("{\"city\":\"Paris\"}");
  auto* m3 = conv->add_messages();
  m3->set_role(pb::ROLE_TOOL);
  m3->set_author("functions.get_weather");
  m3->set_content("{\"temp\":21}");
  write("seed_conversation", 0, chat);
  write("seed_conversation_o200k", 1, chat);
  pb::ToolDefinition* tool = conv->add_tools();
  tool->set_name("get_weather");
  tool->set_description("Gets the weather.");
  tool->set_parameters_json(R"({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})");
  conv->add_tools()->set_name("ping");
  write("seed_conversation_tools", 0, chat);
}

void ProvenanceSeeds() {
  namespace pb = ::ossgate::provenance::v1;
  const std::string target = "provenance_request";
  // The target's message order (the first byte).
  auto write = [&](const std::string& name, int type, const google::protobuf::Message& m) {
    Write(target, name, Prefixed(type, m.SerializeAsString()));
  };
  const std::string sha = token::Sha256Hex("a");
  pb::ModelDescriptor verify;
  verify.set_name("gpt-oss-20b");
  verify.set_source_uri("hf://openai/gpt-oss-20b@0123456789abcdef0123456789abcdef01234567/gpt-oss-20b-MXFP4.gguf");
  verify.set_sha256(sha);
  verify.set_size_bytes(100);
  verify.set_worker_id("w1");
  write("seed_verify", 0, verify);
  pb::AddSourceRequest add_source;
  add_source.set_uri("hf://Qwen/Qwen2.5");
  add_source.set_description("a publisher");
  add_source.set_family("qwen2");
  write("seed_add_source", 1, add_source);
  pb::RevokeSourceRequest revoke_source;
  revoke_source.set_uri("file:///srv/models");
  revoke_source.set_reason("disk compromised");
  write("seed_revoke_source", 2, revoke_source);
  pb::AddFileRequest add_file;
  add_file.set_source_uri("ossgate://test");
  add_file.set_path("dir/model.gguf");
  add_file.set_sha256(sha);
  add_file.set_size_bytes(100);
  add_file.set_description("test model");
  write("seed_add_file", 3, add_file);
  pb::RevokeFileRequest revoke_file;
  revoke_file.set_source_uri("hf://openai/gpt-oss-20b");
  revoke_file.set_path("gpt-oss-20b-MXFP4.gguf");
  revoke_file.set_sha256(sha);
  revoke_file.set_reason("CVE");
  write("seed_revoke_file", 4, revoke_file);
  pb::GetSourceRequest get_source;
  get_source.set_uri("hf://openai/gpt-oss-20b");
  write("seed_get_source", 5, get_source);
  pb::GetFileRequest get_file;
  get_file.set_source_uri("ossgate://test");
  get_file.set_sha256(sha);
  write("seed_get_file", 6, get_file);
  pb::ListSourcesRequest list_sources;
  list_sources.set_page_size(2);
  list_sources.set_page_token(token::Base64UrlEncode("p1:hf://openai"));
  write("seed_list_sources", 7, list_sources);
  pb::ListFilesRequest list_files;
  list_files.set_include_revoked(true);
  list_files.set_page_size(1000);
  list_files.set_page_token(token::Base64UrlEncode("p1:ossgate://test\n\nabc"));
  write("seed_list_files", 8, list_files);
  pb::QueryRecordsRequest query;
  query.mutable_start_time()->set_seconds(1700000000);
  query.mutable_end_time()->set_seconds(1900000000);
  query.mutable_end_time()->set_nanos(5);
  query.set_model_sha256(sha);
  query.set_caller("spiffe://ossgate/role/worker/w1");
  query.set_verdict(pb::VERDICT_REJECTED);
  query.set_kind(pb::RECORD_KIND_VERIFY_MODEL);
  query.set_family("gpt-oss");
  query.set_page_token(token::Base64UrlEncode("p1:2"));
  write("seed_query", 9, query);
  pb::GetCheckpointRequest checkpoint;
  checkpoint.set_tree_size(3);
  write("seed_checkpoint", 10, checkpoint);
  pb::GetInclusionProofRequest inclusion;
  inclusion.set_index(2);
  inclusion.set_tree_size(7);
  write("seed_inclusion", 11, inclusion);
  pb::GetConsistencyProofRequest consistency;
  consistency.set_from_size(3);
  consistency.set_to_size(9);
  write("seed_consistency", 12, consistency);
  write("seed_list_keys", 13, pb::ListPublicKeysRequest());
  pb::SetFamilyRequest set_family;
  set_family.set_source_uri("ossgate://test");
  set_family.set_sha256(sha);
  set_family.set_family("qwen2");
  write("seed_set_family", 14, set_family);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && argc != 3) {
    std::fprintf(stderr, "usage: %s <corpus dir> [o200k vocabulary file]\n", argv[0]);
    return 2;
  }
  g_root = argv[1];
  auto tiny = text::Tokenizer::Create(text::MakeTinyVocab());
  if (!tiny.ok()) Fail(std::string(tiny.status().message()));
  std::unique_ptr<text::Tokenizer> o200k;
  if (argc == 3) {
    auto spec = text::LoadVocabFile(argv[2]);
    if (!spec.ok()) Fail(std::string(spec.status().message()));
    auto t = text::Tokenizer::Create(*std::move(spec));
    if (!t.ok()) Fail(std::string(t.status().message()));
    o200k = *std::move(t);
  }
  GgufSeeds();
  TextSeeds(**tiny, o200k.get());
  ToolSchemaSeeds();
  PasetoSeeds();
  UriSeeds();
  WorkerSeeds();
  ProvenanceSeeds();
  return 0;
}
