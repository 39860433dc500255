// Request decoding and validation of the provenance services
// (server/requests.h): undecodable bytes get INVALID_ARGUMENT naming the
// field, UTF-8 follows the proto3 rule, page tokens round-trip.
#include "provenance_service/server/requests.h"

#include <string>

#include "gtest/gtest.h"
#include "provenance_service/token/encoding.h"

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(ParseRequestTest, NamesTheFieldThatIsNotUtf8) {
  pb::ModelDescriptor d;
  d.set_name("model");
  d.set_worker_id("w1");
  std::string bytes = d.SerializeAsString();
  EXPECT_TRUE(ParseRequest(bytes, &d).ok());
  EXPECT_EQ(d.name(), "model");

  // worker_id (field 5) = "\xff": appended, so it overrides the first one.
  bytes += std::string("\x2a\x01\xff", 3);
  absl::Status s = ParseRequest(bytes, &d);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(s).rfind("worker_id: not valid UTF-8", 0), 0u) << s;
  EXPECT_TRUE(d.name().empty());  // nothing half-decoded is left behind

  // Nested: QueryRecordsRequest.start_time is a Timestamp; a broken one is
  // named by its field.
  pb::QueryRecordsRequest q;
  s = ParseRequest(std::string("\x0a\x03\x08\xff\xff", 5), &q);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Message(s).rfind("start_time: not a valid google.protobuf.Timestamp", 0), 0u) << s;
}

TEST(ParseRequestTest, BytesThatAreNoMessage) {
  pb::AddFileRequest r;
  for (const std::string& bytes : {std::string("\xff\xff\xff", 3), std::string("\x0a\x09short", 7),
                                   std::string("\x0b", 1) /* group start without end */}) {
    absl::Status s = ParseRequest(bytes, &r);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(Message(s).rfind("request: not a valid ossgate.provenance.v1.AddFileRequest", 0), 0u) << s;
  }
  // Unknown fields are not an error (newer clients may send them).
  EXPECT_TRUE(ParseRequest(std::string("\xf8\x07\x01", 3), &r).ok());
  EXPECT_TRUE(ParseRequest("", &r).ok());
}

TEST(ParseRequestTest, Utf8FollowsTheProto3Rule) {
  for (const std::string& ok : {std::string("ascii"), std::string("\xc3\xa9"), std::string("\xe2\x82\xac"),
                                std::string("\xf0\x9f\x99\x82"), std::string("\xf4\x8f\xbf\xbf"),
                                std::string("\x00", 1), std::string("\xed\x9f\xbf")}) {
    EXPECT_TRUE(IsValidUtf8(ok)) << token::HexEncode(ok);
    pb::ModelDescriptor d;
    d.set_name(ok);
    pb::ModelDescriptor back;
    EXPECT_TRUE(ParseRequest(d.SerializeAsString(), &back).ok());
    EXPECT_EQ(back.name(), ok);
  }
  for (const std::string& bad : {std::string("\xff"), std::string("\xc0\xaf") /* overlong */,
                                 std::string("\xe0\x80\xaf") /* overlong */, std::string("\xed\xa0\x80") /* surrogate */,
                                 std::string("\xf4\x90\x80\x80") /* > U+10FFFF */, std::string("\xe2\x82") /* cut */,
                                 std::string("\x80"), std::string("\xf5\x80\x80\x80")}) {
    EXPECT_FALSE(IsValidUtf8(bad)) << token::HexEncode(bad);
    // The protobuf parser agrees.
    pb::ModelDescriptor reference;
    const std::string bytes = std::string(1, '\x0a') + static_cast<char>(bad.size()) + bad;
    EXPECT_FALSE(reference.ParseFromString(bytes)) << token::HexEncode(bad);
  }
}

TEST(PageTokenTest, RoundTripsAndRefusesForeignTokens) {
  pb::ListFilesRequest files;
  const FileKey last{"ossgate://c", "a/b.gguf", std::string(64, 'a')};
  files.set_page_token(FilePageToken(last));
  auto page = ValidateListFiles(files);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_TRUE(page->after.has_value());
  EXPECT_EQ(*page->after, last);
  EXPECT_EQ(page->size, 100u);

  pb::QueryRecordsRequest query;
  query.set_page_token(RecordPageToken(18446744073709551615u));
  auto records = ValidateQueryRecords(query);
  ASSERT_TRUE(records.ok()) << records.status();
  EXPECT_EQ(records->after, 18446744073709551615u);
  query.set_page_token(EncodePageToken("18446744073709551616"));  // one more: would wrap around
  EXPECT_EQ(Message(ValidateQueryRecords(query).status()).rfind("page_token:", 0), 0u);

  pb::ListSourcesRequest sources;
  for (const std::string& bad : {std::string("!!!"), token::Base64UrlEncode("p2:x"), std::string(3000, 'A')}) {
    sources.set_page_token(bad);
    EXPECT_EQ(Message(ValidateListSources(sources).status()).rfind("page_token:", 0), 0u) << bad.substr(0, 10);
  }
  sources.set_page_token("");
  sources.set_page_size(1001);
  EXPECT_EQ(Message(ValidateListSources(sources).status()).rfind("page_size:", 0), 0u);
}

TEST(QueryValidationTest, NamesTheField) {
  pb::QueryRecordsRequest q;
  q.mutable_start_time()->set_seconds(-1);
  EXPECT_EQ(Message(ValidateQueryRecords(q).status()).rfind("start_time:", 0), 0u);
  q.clear_start_time();
  q.set_model_sha256("ABC");
  EXPECT_EQ(Message(ValidateQueryRecords(q).status()).rfind("model_sha256:", 0), 0u);
  q.clear_model_sha256();
  q.set_verdict(static_cast<pb::Verdict>(7));
  EXPECT_EQ(Message(ValidateQueryRecords(q).status()).rfind("verdict:", 0), 0u);
  q.set_verdict(pb::VERDICT_ACCEPTED);
  q.set_kind(pb::RECORD_KIND_REGISTRY_CHANGE);
  auto page = ValidateQueryRecords(q);
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->filter.verdict, "accepted");
  EXPECT_EQ(page->filter.kind, "registry_change");
  EXPECT_EQ(page->filter.family, "");
  q.set_family("Qwen2");
  EXPECT_EQ(Message(ValidateQueryRecords(q).status()).rfind("family: not a model family", 0), 0u);
  q.set_family("qwen2");
  page = ValidateQueryRecords(q);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->filter.family, "qwen2");
}

TEST(RegistryRequestTest, FamiliesReachTheChange) {
  pb::AddSourceRequest source;
  source.set_uri("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF");
  source.set_family("qwen2");
  RegistryChange c = ToRegistryChange(source);
  EXPECT_EQ(c.action, ChangeAction::kAddSource);
  EXPECT_EQ(c.family, "qwen2");
  pb::AddFileRequest file;
  file.set_source_uri("ossgate://bundled");
  file.set_path("m.gguf");
  file.set_sha256(std::string(64, 'a'));
  file.set_size_bytes(3);
  file.set_family("phi3");
  c = ToRegistryChange(file);
  EXPECT_EQ(c.action, ChangeAction::kAddFile);
  EXPECT_EQ(c.family, "phi3");
  EXPECT_TRUE(ValidateRegistryChange(c).ok());
  pb::SetFamilyRequest set;
  set.set_source_uri("ossgate://bundled");
  set.set_path("m.gguf");
  set.set_sha256(std::string(64, 'a'));
  set.set_family("gpt-oss");
  c = ToRegistryChange(set);
  EXPECT_EQ(c.action, ChangeAction::kSetFamily);
  EXPECT_EQ(c.uri, "ossgate://bundled");
  EXPECT_EQ(c.path, "m.gguf");
  EXPECT_EQ(c.sha256, std::string(64, 'a'));
  EXPECT_EQ(c.family, "gpt-oss");
  EXPECT_TRUE(ValidateRegistryChange(c).ok());
  set.clear_family();
  EXPECT_EQ(Message(ValidateRegistryChange(ToRegistryChange(set))).rfind("family: required", 0), 0u);
}

}  // namespace
}  // namespace ossgate::provenance
