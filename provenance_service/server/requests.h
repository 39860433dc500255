// Decoding and validation of the provenance services' requests, kept apart
// from the gRPC handlers (services.cc) so that tests and the fuzz target
// (tests/fuzz/provenance_request_fuzzer.cc) run exactly the service's checks
// on arbitrary bytes.
//
// The services receive raw request bytes and decode them here: gRPC's own
// decoding answers a request that is not valid protobuf (for example a
// proto3 string that is not UTF-8) with UNIMPLEMENTED and an empty message,
// before any handler runs. Every function returns INVALID_ARGUMENT with a
// message that starts with the offending field, as the proto documents.
//
// Thread-safety: pure functions.
#ifndef OSSGATE_PROVENANCE_SERVICE_SERVER_REQUESTS_H_
#define OSSGATE_PROVENANCE_SERVICE_SERVER_REQUESTS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "ossgate/provenance/v1/provenance.pb.h"
#include "provenance_service/core/registry.h"
#include "provenance_service/core/store.h"

namespace ossgate::provenance {

// Decodes `bytes` into `message` (cleared first). INVALID_ARGUMENT
//   "<field>: not valid UTF-8 ..."        for a string field that is not UTF-8
//                                         (nested fields as "a.b");
//   "request: not a valid <type> ..."     for bytes that are not a protobuf
//                                         encoding at all.
absl::Status ParseRequest(std::string_view bytes, google::protobuf::Message* message);

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF), the
// rule proto3 applies to string fields.
bool IsValidUtf8(std::string_view s);

// The request as the policy sees it; validated by ValidateVerifyRequest.
VerifyRequest ToVerifyRequest(const v1::ModelDescriptor& request);

// Registry changes; validated by ValidateRegistryChange.
RegistryChange ToRegistryChange(const v1::AddSourceRequest& request);
RegistryChange ToRegistryChange(const v1::RevokeSourceRequest& request);
RegistryChange ToRegistryChange(const v1::AddFileRequest& request);
RegistryChange ToRegistryChange(const v1::RevokeFileRequest& request);
RegistryChange ToRegistryChange(const v1::SetFamilyRequest& request);

// Page size of a list request: 0 means 100, more than 1000 is refused.
absl::StatusOr<uint32_t> ValidatePageSize(uint32_t requested);

// Opaque page tokens: base64url("p1:" + cursor).
std::string EncodePageToken(std::string_view cursor);
// The cursor of a token returned by this service ("" for an empty token).
absl::StatusOr<std::string> DecodePageToken(std::string_view page_token);

struct SourcePage {
  uint32_t size = 0;
  std::string after;  // URI of the last source of the previous page; "" = first page
};
absl::StatusOr<SourcePage> ValidateListSources(const v1::ListSourcesRequest& request);

struct FilePage {
  uint32_t size = 0;
  std::optional<FileKey> after;  // last entry of the previous page
};
absl::StatusOr<FilePage> ValidateListFiles(const v1::ListFilesRequest& request);
// The page token that continues a file listing after `last`.
std::string FilePageToken(const FileKey& last);

struct RecordPage {
  uint32_t size = 0;
  RecordFilter filter;
  std::optional<uint64_t> after;  // index of the last record of the previous page
};
absl::StatusOr<RecordPage> ValidateQueryRecords(const v1::QueryRecordsRequest& request);
// The page token that continues a query after record `index`.
std::string RecordPageToken(uint64_t index);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_SERVER_REQUESTS_H_
