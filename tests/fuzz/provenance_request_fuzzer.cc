// Fuzz target: the provenance service's request handling on arbitrary
// protobuf bytes, without gRPC. The first byte picks one of the services'
// request messages; the rest are its bytes, decoded by ParseRequest as the
// service does and then run through what the service runs:
//   ModelDescriptor                     validation, then the policy (Evaluate)
//   Add/Revoke Source/File, SetFamily   validation, then ApplyChange on a copy
//                                       of a registry
//   Get/List Sources/Files              page parameters and tokens, lookups
//   QueryRecords                        filter and page validation
//   GetCheckpoint, Get*Proof            the ledger's range checks and proofs
//                                       (a small log in a temporary directory)
//   ListPublicKeysRequest               decoding only
// Properties:
//  - ParseRequest accepts exactly what the protobuf parser accepts, and its
//    refusals are INVALID_ARGUMENT starting with a field of the message (or
//    "request");
//  - validation refusals are INVALID_ARGUMENT naming a field;
//  - a registry change never alters the registry it was copied from, bumps
//    the policy version exactly when applied, and an applied change is
//    visible (with the family it names); a verified decision matches a
//    registered, unrevoked file and names its approved family;
//  - page tokens round-trip; proofs the ledger returns verify.
#include <unistd.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/stubs/logging.h"
#include "ossgate/provenance/v1/provenance.pb.h"
#include "provenance_service/core/default_registry.h"
#include "provenance_service/core/ledger.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/core/registry.h"
#include "provenance_service/server/requests.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/sha256.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using namespace ossgate::provenance;
namespace pb = ::ossgate::provenance::v1;

// "field: ..." where field is "request" or a (dotted) field of `type`.
bool NamesAField(const absl::Status& s, const google::protobuf::Descriptor& type) {
  const std::string message(s.message());
  const size_t colon = message.find(": ");
  if (colon == std::string::npos) return false;
  const std::string field = message.substr(0, colon);
  if (field == "request") return true;
  return type.FindFieldByName(field.substr(0, field.find('.'))) != nullptr;
}

bool NamesOneOf(const absl::Status& s, std::initializer_list<std::string_view> fields) {
  for (std::string_view f : fields) {
    if (s.message().substr(0, f.size() + 1) == std::string(f) + ":") return true;
  }
  return false;
}

// A registry with sources of every trustable scheme, files with and without
// a path, and revocations.
const RegistryState& Registry() {
  static const RegistryState* state = [] {
    auto* s = new RegistryState();
    uint64_t index = 0;
    for (const RegistryChange& c : DefaultRegistryChanges()) ApplyChange(s, c, "system", 1, index++);
    const std::string a = ossgate::token::Sha256Hex("a"), b = ossgate::token::Sha256Hex("b");
    auto change = [](ChangeAction action, std::string uri, std::string path = "", std::string sha = "",
                     uint64_t size = 0, std::string reason = "") {
      RegistryChange c;
      c.action = action;
      c.uri = std::move(uri);
      c.path = std::move(path);
      c.sha256 = std::move(sha);
      c.size = size;
      c.reason = std::move(reason);
      return c;
    };
    const std::vector<RegistryChange> changes = {
        change(ChangeAction::kAddSource, "file:///srv/models"),
        change(ChangeAction::kAddSource, "ossgate://test"),
        change(ChangeAction::kAddFile, "hf://openai/gpt-oss-20b", "gpt-oss-20b-MXFP4.gguf", a, 100),
        change(ChangeAction::kAddFile, "ossgate://test", "", b, 200),
        change(ChangeAction::kAddFile, "file:///srv/models", "x/y.gguf", a, 100),
        change(ChangeAction::kAddFile, "ossgate://bundled", "tiny.gguf", b, 200),
        change(ChangeAction::kRevokeFile, "ossgate://bundled", "tiny.gguf", b, 0, "bad"),
        change(ChangeAction::kAddSource, "hf://evil"),
        change(ChangeAction::kRevokeSource, "hf://evil", "", "", 0, "compromised"),
    };
    for (const RegistryChange& c : changes) {
      if (ApplyChange(s, c, "admin", 2, index++).reason != "applied") std::abort();
    }
    return s;
  }();
  return *state;
}

// A small audit log: the default registry plus a few decisions.
Ledger& TheLedger() {
  static Ledger* ledger = [] {
    std::string dir = std::filesystem::temp_directory_path().string();
    dir.append("/provenance_fuzz_XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) std::abort();
    static const std::string cleanup = dir;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(cleanup, ec);
    });
    LedgerOptions options;
    options.db_path = dir + "/audit.db";
    options.log_origin = "fuzz.local/provenance";
    auto key = ossgate::token::Ed25519PrivateKey::FromSeed("provenance fuzz checkpoint key!!");
    auto opened = Ledger::Open(options, SystemClock::Get(),
                               std::make_shared<const ossgate::token::Ed25519PrivateKey>(*std::move(key)));
    if (!opened.ok()) std::abort();
    Ledger* l = opened->release();
    for (int i = 0; i < 5; ++i) {
      std::mutex mu;
      std::condition_variable cv;
      bool done = false;
      VerifySubmission sub;
      sub.caller = "spiffe://ossgate/role/worker/w1";
      sub.request = {"m", "ossgate://bundled/m.gguf", ossgate::token::Sha256Hex("m"), 1, "w1"};
      sub.token_id = ossgate::token::Sha256Hex("token").substr(0, 32);
      l->SubmitVerify(std::move(sub), [&](absl::StatusOr<VerifyResult>) {
        std::lock_guard<std::mutex> lock(mu);
        done = true;
        cv.notify_one();
      });
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
    }
    return l;
  }();
  return *ledger;
}

void CheckChange(const RegistryChange& change) {
  const absl::Status valid = ValidateRegistryChange(change);
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(
        NamesOneOf(valid, {"uri", "source_uri", "path", "sha256", "size_bytes", "description", "reason", "family"}));
    return;
  }
  const RegistryState& base = Registry();
  const uint64_t version = base.policy_version;
  const size_t sources = base.sources.size(), files = base.files.size();
  RegistryState copy = base;
  const ChangeResult r = ApplyChange(&copy, change, "admin", 3, 99);
  FUZZ_CHECK(base.policy_version == version && base.sources.size() == sources && base.files.size() == files);
  if (r.reason == "applied") {
    FUZZ_CHECK(r.status.ok() && copy.policy_version == version + 1);
    const bool names_source = change.action == ChangeAction::kAddSource ||
                              change.action == ChangeAction::kRevokeSource ||
                              (change.action == ChangeAction::kSetFamily && change.sha256.empty());
    if (names_source) {
      auto it = copy.sources.find(change.uri);
      FUZZ_CHECK(it != copy.sources.end());
      FUZZ_CHECK(it->second.revoked == (change.action == ChangeAction::kRevokeSource));
      auto old = base.sources.find(change.uri);
      FUZZ_CHECK(old == base.sources.end() || !old->second.revoked);  // the base copy did not change
      if (change.action != ChangeAction::kRevokeSource) FUZZ_CHECK(it->second.family == change.family);
    } else {
      auto it = copy.files.find(FileKey{change.uri, change.path, change.sha256});
      FUZZ_CHECK(it != copy.files.end());
      FUZZ_CHECK(it->second.revoked == (change.action == ChangeAction::kRevokeFile));
      if (change.action != ChangeAction::kRevokeFile) FUZZ_CHECK(it->second.family == change.family);
    }
    if (change.action == ChangeAction::kSetFamily) FUZZ_CHECK(ossgate::token::IsModelFamily(change.family));
  } else {
    FUZZ_CHECK(!r.status.ok() && copy.policy_version == version);
    FUZZ_CHECK(r.reason == "already_exists" || r.reason == "not_found" || r.reason == "revoked" ||
               r.reason == "already_revoked");
  }
}

void CheckVerify(const pb::ModelDescriptor& m) {
  const VerifyRequest req = ToVerifyRequest(m);
  const absl::Status valid = ValidateVerifyRequest(req);
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesOneOf(valid, {"name", "source_uri", "sha256", "size_bytes", "worker_id"}));
    return;
  }
  const Decision d = Evaluate(Registry(), req);
  FUZZ_CHECK(d.reason != VerifyReason::kMalformedRequest && d.reason != VerifyReason::kPermissionDenied);
  if (d.reason == VerifyReason::kVerified) {
    FUZZ_CHECK(d.source && d.file && !d.source->revoked && !d.file->revoked);
    FUZZ_CHECK(d.file->key.sha256 == req.sha256 && d.file->size == req.size);
    FUZZ_CHECK(d.file->key.source_uri == d.source->uri);
    FUZZ_CHECK(d.file->key.path.empty() || d.file->key.path == d.relative_path);
    FUZZ_CHECK(ossgate::token::IsModelFamily(d.family) && d.family == ApprovedFamily(Registry(), *d.file));
  } else {
    FUZZ_CHECK(d.family.empty());
  }
}

void CheckPages(const pb::ListSourcesRequest& r) {
  const auto page = ValidateListSources(r);
  if (!page.ok()) {
    FUZZ_CHECK(page.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesOneOf(page.status(), {"page_size", "page_token"}));
    return;
  }
  FUZZ_CHECK(page->size >= 1 && page->size <= 1000);
  pb::ListSourcesRequest again;
  again.set_page_token(EncodePageToken(page->after));
  FUZZ_CHECK(ValidateListSources(again).ok() && ValidateListSources(again)->after == page->after);
}

void CheckPages(const pb::ListFilesRequest& r) {
  const auto page = ValidateListFiles(r);
  if (!page.ok()) {
    FUZZ_CHECK(page.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesOneOf(page.status(), {"page_size", "page_token"}));
    return;
  }
  FUZZ_CHECK(page->size >= 1 && page->size <= 1000);
  if (page->after) {
    pb::ListFilesRequest again;
    again.set_page_token(FilePageToken(*page->after));
    const auto back = ValidateListFiles(again);
    FUZZ_CHECK(back.ok() && back->after && *back->after == *page->after);
  }
}

void CheckQuery(const pb::QueryRecordsRequest& r) {
  const auto page = ValidateQueryRecords(r);
  if (!page.ok()) {
    FUZZ_CHECK(page.status().code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesOneOf(page.status(), {"page_size", "page_token", "start_time", "end_time", "model_sha256",
                                          "source_uri", "caller", "verdict", "kind", "family"}));
    return;
  }
  FUZZ_CHECK(page->size >= 1 && page->size <= 1000);
  if (page->after) {
    pb::QueryRecordsRequest again;
    again.set_page_token(RecordPageToken(*page->after));
    const auto back = ValidateQueryRecords(again);
    FUZZ_CHECK(back.ok() && back->after == page->after);
  }
  const auto rows = TheLedger().Query(page->filter, page->after, static_cast<int>(page->size) + 1);
  FUZZ_CHECK(rows.ok());
  for (const StoredRecord& row : *rows) FUZZ_CHECK(!page->after || row.index > *page->after);
}

void CheckProofs(uint64_t index, uint64_t size, uint64_t from, uint64_t to) {
  Ledger& ledger = TheLedger();
  const StoredCheckpoint latest = ledger.latest_checkpoint();
  if (size == 0) size = latest.tree_size;
  const auto inclusion = ledger.InclusionProof(index, size);
  if (inclusion.ok()) {
    FUZZ_CHECK(index < size && size <= latest.tree_size);
    const auto record = ledger.GetRecord(index);
    const auto cp = ledger.CheckpointAt(size);
    FUZZ_CHECK(record.ok() && record->has_value());
    if (cp.ok()) FUZZ_CHECK(VerifyInclusion(index, size, LeafHash((*record)->record), *inclusion, cp->root).ok());
  } else {
    FUZZ_CHECK(inclusion.status().code() == absl::StatusCode::kOutOfRange ||
               inclusion.status().code() == absl::StatusCode::kInvalidArgument);
  }
  if (to == 0) to = latest.tree_size;
  const auto consistency = ledger.ConsistencyProof(from, to);
  if (consistency.ok()) {
    FUZZ_CHECK(from >= 1 && from <= to && to <= latest.tree_size);
    const auto a = ledger.CheckpointAt(from), b = ledger.CheckpointAt(to);
    if (a.ok() && b.ok()) FUZZ_CHECK(VerifyConsistency(from, to, a->root, b->root, *consistency).ok());
  } else {
    FUZZ_CHECK(consistency.status().code() == absl::StatusCode::kOutOfRange ||
               consistency.status().code() == absl::StatusCode::kInvalidArgument);
  }
  const auto cp = ledger.CheckpointAt(index);
  if (!cp.ok()) FUZZ_CHECK(cp.status().code() == absl::StatusCode::kNotFound);
}

// Decodes `bytes` as a T like the service, checking ParseRequest against the
// protobuf parser; returns whether it decoded.
template <typename T>
bool Decode(std::string_view bytes, T* message) {
  const absl::Status s = ParseRequest(bytes, message);
  T reference;
  const bool parses = reference.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  FUZZ_CHECK(s.ok() == parses);
  if (!s.ok()) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    FUZZ_CHECK(NamesAField(s, *T::descriptor()));
    return false;
  }
  FUZZ_CHECK(message->SerializeAsString() == reference.SerializeAsString());
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // The protobuf parser logs every invalid string; the target checks the
  // results instead.
  google::protobuf::SetLogHandler(nullptr);
  (void)Registry();
  (void)TheLedger();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 15) {
    case 0: {
      pb::ModelDescriptor m;
      if (Decode(bytes, &m)) CheckVerify(m);
      break;
    }
    case 1: {
      pb::AddSourceRequest m;
      if (Decode(bytes, &m)) CheckChange(ToRegistryChange(m));
      break;
    }
    case 2: {
      pb::RevokeSourceRequest m;
      if (Decode(bytes, &m)) CheckChange(ToRegistryChange(m));
      break;
    }
    case 3: {
      pb::AddFileRequest m;
      if (Decode(bytes, &m)) CheckChange(ToRegistryChange(m));
      break;
    }
    case 4: {
      pb::RevokeFileRequest m;
      if (Decode(bytes, &m)) CheckChange(ToRegistryChange(m));
      break;
    }
    case 5: {
      pb::GetSourceRequest m;
      if (Decode(bytes, &m)) (void)Registry().sources.count(m.uri());
      break;
    }
    case 6: {
      pb::GetFileRequest m;
      if (Decode(bytes, &m)) (void)Registry().files.count(FileKey{m.source_uri(), m.path(), m.sha256()});
      break;
    }
    case 7: {
      pb::ListSourcesRequest m;
      if (Decode(bytes, &m)) CheckPages(m);
      break;
    }
    case 8: {
      pb::ListFilesRequest m;
      if (Decode(bytes, &m)) CheckPages(m);
      break;
    }
    case 9: {
      pb::QueryRecordsRequest m;
      if (Decode(bytes, &m)) CheckQuery(m);
      break;
    }
    case 10: {
      pb::GetCheckpointRequest m;
      if (Decode(bytes, &m)) CheckProofs(m.tree_size(), 0, 1, 0);
      break;
    }
    case 11: {
      pb::GetInclusionProofRequest m;
      if (Decode(bytes, &m)) CheckProofs(m.index(), m.tree_size(), 1, 0);
      break;
    }
    case 12: {
      pb::GetConsistencyProofRequest m;
      if (Decode(bytes, &m)) CheckProofs(0, 0, m.from_size(), m.to_size());
      break;
    }
    case 13: {
      pb::ListPublicKeysRequest m;
      (void)Decode(bytes, &m);
      break;
    }
    case 14: {
      pb::SetFamilyRequest m;
      if (Decode(bytes, &m)) CheckChange(ToRegistryChange(m));
      break;
    }
  }
  return 0;
}
