// Fuzz target: the model/source URI grammar and the other string checks of
// provenance_service/core/model_uri.h, which stand between a request and the
// policy. Properties:
//  - every rejection is InvalidArgument;
//  - an accepted URI is canonical: its Locator (plus "@revision" for hf) is
//    the input, so string equality is URI equality, and every segment obeys
//    the documented alphabet (no "." / "..", no empty segment, no "%");
//  - the file and source variants accept subsets of ParseUri;
//  - Sanitize always yields printable ASCII without a bare backslash, and
//    keeps inputs that need no escaping (and are short enough) unchanged.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "provenance_service/core/model_uri.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace ossgate::provenance;

bool SegmentOk(const std::string& s) {
  if (s.empty() || s == "." || s == ".." || s.size() > 255) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '+' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void CheckUri(std::string_view input) {
  const auto uri = ParseUri(input);
  const auto file = ParseModelFileUri(input);
  const auto source = ParseSourceUri(input);
  if (!uri.ok()) {
    FUZZ_CHECK(uri.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(!file.ok() && !source.ok());
    return;
  }
  if (!file.ok()) FUZZ_CHECK(file.status().code() == absl::StatusCode::kInvalidArgument);
  if (!source.ok()) FUZZ_CHECK(source.status().code() == absl::StatusCode::kInvalidArgument);
  FUZZ_CHECK(!uri->segments.empty() && uri->segments.size() <= 32);
  for (const std::string& s : uri->segments) FUZZ_CHECK(SegmentOk(s));
  std::string canonical = uri->Locator();
  if (!uri->revision.empty()) {
    FUZZ_CHECK(uri->scheme == UriScheme::kHf && uri->segments.size() >= 2 && uri->revision.size() == 40);
    const std::string repo_prefix = uri->PrefixLocator(2);
    canonical = repo_prefix + "@" + uri->revision + canonical.substr(repo_prefix.size());
  }
  FUZZ_CHECK(canonical == input);
  for (size_t n = 1; n <= uri->segments.size(); ++n) {
    const auto prefix = ParseUri(uri->PrefixLocator(n));
    FUZZ_CHECK(prefix.ok() && prefix->segments.size() == n);
  }
  if (source.ok()) FUZZ_CHECK(IsTrustableScheme(source->scheme) && source->revision.empty());
}

void CheckStrings(std::string_view input) {
  if (const absl::Status s = ValidateRelativePath(input); s.ok()) {
    FUZZ_CHECK(input.size() <= kMaxPathLength);
    // A registered path is reachable by a model URI (up to the URI's
    // segment limit).
    if (!input.empty() && std::count(input.begin(), input.end(), '/') < 31) {
      FUZZ_CHECK(ParseUri("ossgate://c/" + std::string(input)).ok());
    }
  } else {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  }
  if (const absl::Status s = ValidateName(input); !s.ok()) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
  } else {
    FUZZ_CHECK(!input.empty() && input.size() <= kMaxNameLength && input.find('/') == std::string_view::npos);
  }
  for (bool required : {false, true}) {
    if (const absl::Status s = ValidateText(input, required); !s.ok()) {
      FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    }
  }
  for (size_t max : {size_t{0}, size_t{4}, size_t{160}, kMaxTextLength}) {
    const std::string out = Sanitize(input, max);
    bool plain = input.size() <= max;
    for (size_t i = 0; i < out.size(); ++i) {
      FUZZ_CHECK(out[i] >= 0x20 && out[i] <= 0x7e);
      if (out[i] == '\\') FUZZ_CHECK(out.compare(i, 2, "\\x") == 0);
    }
    for (char c : input) plain = plain && c >= 0x20 && c <= 0x7e && c != '\\';
    if (plain) FUZZ_CHECK(out == input);
    FUZZ_CHECK(out.size() <= 4 * max + 40);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckUri(input);
  CheckStrings(input);
  return 0;
}
