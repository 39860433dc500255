#include "provenance_service/server/services.h"

#include <grpc/grpc_security_constants.h>
#include <openssl/rand.h>

#include <initializer_list>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/timestamp.pb.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/server/grpc_status.h"
#include "provenance_service/server/requests.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;

constexpr int kEntriesPerMessage = 100;

// ---- identity and roles ----

struct Caller {
  absl::StatusOr<CallerIdentity> identity = absl::UnauthenticatedError("no identity");
  std::string recorded = "unidentified";  // as written to the audit log
};

Caller Authenticate(const ServiceContext& ctx, grpc::CallbackServerContext* sctx) {
  Caller c;
  if (ctx.dev_identities) {
    const auto& md = sctx->client_metadata();
    auto it = md.find(kDevIdentityMetadata);
    if (it == md.end()) {
      c.identity = absl::UnauthenticatedError(
          absl::StrCat("development mode: send the caller identity in metadata \"", kDevIdentityMetadata, "\""));
      return c;
    }
    std::string uri(it->second.data(), it->second.size());
    c.identity = ParseSpiffeIdentity(uri);
    c.recorded = "dev:" + Sanitize(uri, 160);
    return c;
  }
  auto auth = sctx->auth_context();
  std::vector<grpc::string_ref> pems;
  if (auth) pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (pems.empty()) {
    c.identity = absl::UnauthenticatedError("no client certificate");
    return c;
  }
  const CertificateIdentity cert =
      ctx.identities->Lookup(std::string_view(pems.front().data(), pems.front().size()));
  c.identity = cert.identity;
  c.recorded = c.identity.ok() ? c.identity->uri : UnidentifiedCaller(cert);
  return c;
}

absl::Status RequireRole(const Caller& c, std::initializer_list<Role> roles, std::string_view method) {
  if (!c.identity.ok()) return c.identity.status();
  for (Role r : roles) {
    if (c.identity->role == r) return absl::OkStatus();
  }
  std::string allowed;
  for (Role r : roles) absl::StrAppend(&allowed, allowed.empty() ? "" : " or ", std::string(RoleName(r)));
  return absl::PermissionDeniedError(absl::StrCat(std::string(method), " requires role ", allowed, "; caller ",
                                                  c.identity->uri, " has role ",
                                                  std::string(RoleName(c.identity->role))));
}

// ---- conversions ----

void SetTime(uint64_t us, google::protobuf::Timestamp* ts) {
  ts->set_seconds(static_cast<int64_t>(us / 1000000));
  ts->set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
}

pb::Reason ToProto(VerifyReason r) {
  switch (r) {
    case VerifyReason::kVerified: return pb::REASON_VERIFIED;
    case VerifyReason::kUntrustedSource: return pb::REASON_UNTRUSTED_SOURCE;
    case VerifyReason::kUnknownHash: return pb::REASON_UNKNOWN_HASH;
    case VerifyReason::kHashMismatch: return pb::REASON_HASH_MISMATCH;
    case VerifyReason::kSizeMismatch: return pb::REASON_SIZE_MISMATCH;
    case VerifyReason::kRevoked: return pb::REASON_REVOKED;
    case VerifyReason::kMalformedRequest: return pb::REASON_MALFORMED_REQUEST;
    case VerifyReason::kPermissionDenied: return pb::REASON_PERMISSION_DENIED;
  }
  return pb::REASON_UNSPECIFIED;
}

void FillSource(const SourceEntry& e, pb::TrustedSource* out) {
  out->set_uri(e.uri);
  out->set_description(e.description);
  out->set_family(e.family);
  out->set_revoked(e.revoked);
  out->set_revoke_reason(e.revoke_reason);
  SetTime(e.added_us, out->mutable_added_at());
  out->set_added_by(e.added_by);
  if (e.revoked) SetTime(e.revoked_us, out->mutable_revoked_at());
  out->set_revoked_by(e.revoked_by);
  out->set_added_log_index(e.added_log_index);
}

// `approved_family`: what approvals of the entry name (ApprovedFamily).
void FillFile(const FileEntry& e, const std::string& approved_family, pb::TrustedFile* out) {
  out->set_source_uri(e.key.source_uri);
  out->set_path(e.key.path);
  out->set_sha256(e.key.sha256);
  out->set_size_bytes(e.size);
  out->set_description(e.description);
  out->set_family(e.family);
  out->set_approved_family(approved_family);
  out->set_revoked(e.revoked);
  out->set_revoke_reason(e.revoke_reason);
  SetTime(e.added_us, out->mutable_added_at());
  out->set_added_by(e.added_by);
  if (e.revoked) SetTime(e.revoked_us, out->mutable_revoked_at());
  out->set_revoked_by(e.revoked_by);
  out->set_added_log_index(e.added_log_index);
}

void FillRecord(const AuditRecord& r, pb::AuditRecord* out) {
  out->set_kind(r.kind == RecordKind::kVerifyModel ? pb::RECORD_KIND_VERIFY_MODEL : pb::RECORD_KIND_REGISTRY_CHANGE);
  SetTime(r.time_us, out->mutable_time());
  out->set_caller(r.caller);
  out->set_verdict(r.verdict == Verdict::kAccepted ? pb::VERDICT_ACCEPTED : pb::VERDICT_REJECTED);
  out->set_reason(r.reason);
  out->set_detail(r.detail);
  if (r.kind == RecordKind::kVerifyModel) {
    pb::ModelDescriptor* req = out->mutable_request();
    req->set_name(r.req_name);
    req->set_source_uri(r.req_source_uri);
    req->set_sha256(r.req_sha256);
    req->set_size_bytes(r.req_size);
    req->set_worker_id(r.req_worker_id);
  }
  out->set_token_id(r.token_id);
  if (r.token_exp_us != 0) SetTime(r.token_exp_us, out->mutable_token_expires_at());
  out->set_token_key_id(r.token_key_id);
  out->set_matched_source(r.matched_source);
  out->set_matched_path(r.matched_path);
  out->set_policy_version(r.policy_version);
  out->set_action(r.action);
  out->set_target_uri(r.target_uri);
  out->set_target_path(r.target_path);
  out->set_target_sha256(r.target_sha256);
  out->set_target_size_bytes(r.target_size);
  out->set_description(r.description);
  out->set_revoke_reason(r.revoke_reason);
  out->set_family(r.family);
}

std::string RandomHex(size_t bytes) {
  std::string buf(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(buf.data()), static_cast<int>(bytes)) != 1) abort();
  return token::HexEncode(buf);
}

// ---- raw messages ----
//
// Every method is registered raw (ByteBuffer in and out) so that requests
// are decoded by ParseRequest (requests.h), which names what is wrong:
// gRPC's own decoding answers undecodable requests with UNIMPLEMENTED and no
// message, before any handler runs.

std::string Bytes(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!buffer.Dump(&slices).ok()) return out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer Serialize(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// Answers a unary call: the serialized response when `s` is OK.
void Reply(grpc::ServerUnaryReactor* reactor, const absl::Status& s, const google::protobuf::Message& response,
           grpc::ByteBuffer* out) {
  if (s.ok()) *out = Serialize(response);
  reactor->Finish(ToGrpcStatus(s));
}

// A unary read: checks the caller's role, decodes the request and answers
// with `handle(request, &response)` at once.
template <typename Request, typename Response, typename Handler>
grpc::ServerUnaryReactor* AnswerNow(const ServiceContext& ctx, grpc::CallbackServerContext* sctx,
                                    std::initializer_list<Role> roles, std::string_view method,
                                    const grpc::ByteBuffer* raw, grpc::ByteBuffer* out, Handler handle) {
  auto* reactor = sctx->DefaultReactor();
  Request request;
  Response response;
  absl::Status s = RequireRole(Authenticate(ctx, sctx), roles, method);
  if (s.ok()) s = ParseRequest(Bytes(*raw), &request);
  if (s.ok()) s = handle(request, &response);
  Reply(reactor, s, response, out);
  return reactor;
}

absl::Status WithRecordIndex(const absl::Status& s, uint64_t index) {
  return absl::Status(s.code(), absl::StrCat(s.message(), " (audit record ", index, ")"));
}

}  // namespace

CertificateIdentity IdentityCache::Lookup(std::string_view pem) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(std::string(pem));
    if (it != entries_.end()) return it->second;
  }
  CertificateIdentity id = IdentifyCertificatePem(pem);
  std::lock_guard<std::mutex> lock(mu_);
  if (entries_.size() >= kMaxEntries) entries_.clear();
  entries_.emplace(std::string(pem), id);
  return id;
}

// ===========================================================================
// VerificationService
// ===========================================================================

class ProvenanceServices::Verification final
    : public pb::VerificationService::WithRawCallbackMethod_VerifyModel<pb::VerificationService::Service> {
 public:
  explicit Verification(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* VerifyModel(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                        grpc::ByteBuffer* out) override {
    auto* reactor = sctx->DefaultReactor();
    Caller caller = Authenticate(ctx_, sctx);
    pb::ModelDescriptor req;
    const absl::Status parsed = ParseRequest(Bytes(*raw), &req);
    VerifySubmission sub;
    sub.caller = caller.recorded;
    sub.request = ToVerifyRequest(req);  // empty fields if it did not decode
    sub.token_id = RandomHex(16);
    sub.token_ttl = ctx_.token_ttl;
    sub.token_key_id = ctx_.signer->key_id();

    // Refusals are decided here but still go through the ledger, so that
    // every call is on record before it is answered.
    absl::Status refusal = RequireRole(caller, {Role::kWorker}, "VerifyModel");
    if (!refusal.ok()) {
      sub.rejection = VerifyReason::kPermissionDenied;
    } else if (!parsed.ok()) {
      refusal = parsed;
      sub.rejection = VerifyReason::kMalformedRequest;
    } else if (refusal = ValidateVerifyRequest(sub.request); !refusal.ok()) {
      sub.rejection = VerifyReason::kMalformedRequest;
    } else if (req.worker_id() != caller.identity->id) {
      refusal = absl::PermissionDeniedError(
          absl::StrCat("worker_id: \"", Sanitize(req.worker_id(), 128), "\" does not match the certificate identity ",
                       caller.identity->uri));
      sub.rejection = VerifyReason::kPermissionDenied;
    }
    sub.rejection_detail = std::string(refusal.message());

    ctx_.ledger->SubmitVerify(std::move(sub), [this, reactor, out, refusal](absl::StatusOr<VerifyResult> r) {
      if (!r.ok()) {
        reactor->Finish(ToGrpcStatus(r.status()));
        return;
      }
      if (!refusal.ok()) {
        reactor->Finish(ToGrpcStatus(WithRecordIndex(refusal, r->index)));
        return;
      }
      pb::VerifyModelResponse resp;
      const absl::Status s = Respond(*r, &resp);
      Reply(reactor, s, resp, out);
    });
    return reactor;
  }

 private:
  absl::Status Respond(const VerifyResult& r, pb::VerifyModelResponse* resp) const {
    const Decision& d = r.decision;
    resp->set_verified(d.reason == VerifyReason::kVerified);
    resp->set_reason(ToProto(d.reason));
    resp->set_detail(r.record.detail);
    resp->set_log_index(r.index);
    resp->set_policy_version(r.record.policy_version);
    if (d.source) FillSource(*d.source, resp->mutable_matched_source());
    if (d.file) {
      // An approval's family is the decision's; for a refusal, what the entry
      // would approve as now.
      FillFile(*d.file,
               d.reason == VerifyReason::kVerified ? d.family : ApprovedFamily(*ctx_.ledger->registry(), *d.file),
               resp->mutable_matched_file());
    }
    if (d.reason != VerifyReason::kVerified) return absl::OkStatus();
    resp->set_model_family(d.family);

    token::ApprovalClaims claims;
    claims.issuer = ctx_.token_issuer;
    claims.worker_id = r.record.req_worker_id;
    claims.token_id = r.record.token_id;
    claims.model_sha256 = r.record.req_sha256;
    claims.model_size = r.record.req_size;
    claims.source_uri = r.record.req_source_uri;
    claims.model_name = r.record.req_name;
    claims.model_family = d.family;  // ApprovedFamily: never empty for an approval
    claims.policy_version = r.record.policy_version;
    claims.log_index = r.index;
    claims.log_origin = ctx_.ledger->log_origin();
    claims.issued_at = absl::FromUnixMicros(static_cast<int64_t>(r.record.time_us));
    claims.not_before = claims.issued_at;
    claims.expires_at = absl::FromUnixMicros(static_cast<int64_t>(r.record.token_exp_us));
    auto token = ctx_.signer->Sign(claims);
    if (!token.ok()) {
      return absl::InternalError(absl::StrCat("token signing failed: ", token.status().message(),
                                              " (audit record ", r.index, " says verified; no token was issued)"));
    }
    resp->set_approval_token(*token);
    resp->set_token_key_id(ctx_.signer->key_id());
    // The token carries second precision; report the token's own expiry.
    SetTime(static_cast<uint64_t>(absl::ToUnixSeconds(claims.expires_at)) * 1000000,
            resp->mutable_token_expires_at());
    return absl::OkStatus();
  }

  const ServiceContext& ctx_;
};

// ===========================================================================
// RegistryService
// ===========================================================================

// Every RegistryService method raw (see "raw messages" above).
using RawRegistryService = pb::RegistryService::WithRawCallbackMethod_AddSource<
    pb::RegistryService::WithRawCallbackMethod_RevokeSource<pb::RegistryService::WithRawCallbackMethod_GetSource<
        pb::RegistryService::WithRawCallbackMethod_ListSources<pb::RegistryService::WithRawCallbackMethod_AddFile<
            pb::RegistryService::WithRawCallbackMethod_RevokeFile<pb::RegistryService::WithRawCallbackMethod_GetFile<
                pb::RegistryService::WithRawCallbackMethod_ListFiles<
                    pb::RegistryService::WithRawCallbackMethod_SetFamily<pb::RegistryService::Service>>>>>>>>>;

class ProvenanceServices::Registry final : public RawRegistryService {
 public:
  explicit Registry(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* AddSource(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                      grpc::ByteBuffer* out) override {
    return Change<pb::AddSourceRequest>(sctx, raw, ChangeAction::kAddSource, "AddSource", out);
  }
  grpc::ServerUnaryReactor* RevokeSource(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                         grpc::ByteBuffer* out) override {
    return Change<pb::RevokeSourceRequest>(sctx, raw, ChangeAction::kRevokeSource, "RevokeSource", out);
  }
  grpc::ServerUnaryReactor* AddFile(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                    grpc::ByteBuffer* out) override {
    return Change<pb::AddFileRequest>(sctx, raw, ChangeAction::kAddFile, "AddFile", out);
  }
  grpc::ServerUnaryReactor* RevokeFile(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                       grpc::ByteBuffer* out) override {
    return Change<pb::RevokeFileRequest>(sctx, raw, ChangeAction::kRevokeFile, "RevokeFile", out);
  }
  grpc::ServerUnaryReactor* SetFamily(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                      grpc::ByteBuffer* out) override {
    return Change<pb::SetFamilyRequest>(sctx, raw, ChangeAction::kSetFamily, "SetFamily", out);
  }

  grpc::ServerUnaryReactor* GetSource(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                      grpc::ByteBuffer* out) override {
    return AnswerNow<pb::GetSourceRequest, pb::TrustedSource>(
        ctx_, sctx, {Role::kAdmin, Role::kAuditor}, "GetSource", raw, out,
        [this](const pb::GetSourceRequest& req, pb::TrustedSource* resp) {
          auto reg = ctx_.ledger->registry();
          auto it = reg->sources.find(req.uri());
          if (it == reg->sources.end()) return absl::NotFoundError(absl::StrCat("uri: no source ", Sanitize(req.uri())));
          FillSource(it->second, resp);
          return absl::OkStatus();
        });
  }

  grpc::ServerUnaryReactor* ListSources(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                        grpc::ByteBuffer* out) override {
    return AnswerNow<pb::ListSourcesRequest, pb::ListSourcesResponse>(
        ctx_, sctx, {Role::kAdmin, Role::kAuditor}, "ListSources", raw, out,
        [this](const pb::ListSourcesRequest& req, pb::ListSourcesResponse* resp) {
          auto page = ValidateListSources(req);
          if (!page.ok()) return page.status();
          auto reg = ctx_.ledger->registry();
          auto it = page->after.empty() ? reg->sources.begin() : reg->sources.upper_bound(page->after);
          for (; it != reg->sources.end(); ++it) {
            if (it->second.revoked && !req.include_revoked()) continue;
            if (static_cast<uint32_t>(resp->sources_size()) == page->size) {
              resp->set_next_page_token(EncodePageToken(resp->sources(resp->sources_size() - 1).uri()));
              break;
            }
            FillSource(it->second, resp->add_sources());
          }
          return absl::OkStatus();
        });
  }

  grpc::ServerUnaryReactor* GetFile(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                    grpc::ByteBuffer* out) override {
    return AnswerNow<pb::GetFileRequest, pb::TrustedFile>(
        ctx_, sctx, {Role::kAdmin, Role::kAuditor}, "GetFile", raw, out,
        [this](const pb::GetFileRequest& req, pb::TrustedFile* resp) {
          auto reg = ctx_.ledger->registry();
          auto it = reg->files.find(FileKey{req.source_uri(), req.path(), req.sha256()});
          if (it == reg->files.end()) return absl::NotFoundError("no such file entry");
          FillFile(it->second, ApprovedFamily(*reg, it->second), resp);
          return absl::OkStatus();
        });
  }

  grpc::ServerUnaryReactor* ListFiles(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                      grpc::ByteBuffer* out) override {
    return AnswerNow<pb::ListFilesRequest, pb::ListFilesResponse>(
        ctx_, sctx, {Role::kAdmin, Role::kAuditor}, "ListFiles", raw, out,
        [this](const pb::ListFilesRequest& req, pb::ListFilesResponse* resp) {
          auto page = ValidateListFiles(req);
          if (!page.ok()) return page.status();
          auto reg = ctx_.ledger->registry();
          auto it = page->after ? reg->files.upper_bound(*page->after) : reg->files.begin();
          for (; it != reg->files.end(); ++it) {
            const FileEntry& f = it->second;
            if (f.revoked && !req.include_revoked()) continue;
            if (!req.source_uri().empty() && f.key.source_uri != req.source_uri()) continue;
            if (!req.sha256().empty() && f.key.sha256 != req.sha256()) continue;
            if (static_cast<uint32_t>(resp->files_size()) == page->size) {
              const auto& last = resp->files(resp->files_size() - 1);
              resp->set_next_page_token(FilePageToken(FileKey{last.source_uri(), last.path(), last.sha256()}));
              break;
            }
            FillFile(f, ApprovedFamily(*reg, f), resp->add_files());
          }
          return absl::OkStatus();
        });
  }

 private:
  // A registry change: every attempt, refused ones included, is recorded
  // before it is answered.
  template <typename Request>
  grpc::ServerUnaryReactor* Change(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                   ChangeAction action, const char* method, grpc::ByteBuffer* out) {
    auto* reactor = sctx->DefaultReactor();
    Caller caller = Authenticate(ctx_, sctx);
    Request req;
    const absl::Status parsed = ParseRequest(Bytes(*raw), &req);
    ChangeSubmission sub;
    sub.caller = caller.recorded;
    sub.change = ToRegistryChange(req);  // empty fields if it did not decode
    sub.change.action = action;
    absl::Status refusal = RequireRole(caller, {Role::kAdmin}, method);
    if (!refusal.ok()) {
      sub.rejection = "permission_denied";
    } else if (!parsed.ok()) {
      refusal = parsed;
      sub.rejection = "malformed_request";
    } else if (refusal = ValidateRegistryChange(sub.change); !refusal.ok()) {
      sub.rejection = "malformed_request";
    }
    sub.rejection_detail = std::string(refusal.message());
    ctx_.ledger->SubmitChange(std::move(sub), [this, reactor, out, refusal](absl::StatusOr<ChangeOutcome> r) {
      if (!r.ok()) {
        reactor->Finish(ToGrpcStatus(r.status()));
        return;
      }
      if (!refusal.ok()) {
        reactor->Finish(ToGrpcStatus(WithRecordIndex(refusal, r->index)));
        return;
      }
      pb::RegistryChangeResponse resp;
      resp.set_log_index(r->index);
      resp.set_policy_version(r->policy_version);
      if (r->result.source) FillSource(*r->result.source, resp.mutable_source());
      if (r->result.file) {
        FillFile(*r->result.file, ApprovedFamily(*ctx_.ledger->registry(), *r->result.file), resp.mutable_file());
      }
      Reply(reactor, r->result.status.ok() ? absl::OkStatus() : WithRecordIndex(r->result.status, r->index), resp,
            out);
    });
    return reactor;
  }

  const ServiceContext& ctx_;
};

// ===========================================================================
// AuditService
// ===========================================================================

namespace {

// Streams one pre-fetched page of records, serialized.
class QueryWriter final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  QueryWriter(std::vector<grpc::ByteBuffer> messages, absl::Status status) : messages_(std::move(messages)) {
    if (!status.ok() || messages_.empty()) {
      Finish(ToGrpcStatus(status));
      return;
    }
    StartWrite(&messages_[0]);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return;
    }
    if (++next_ < messages_.size()) {
      StartWrite(&messages_[next_]);
    } else {
      Finish(grpc::Status::OK);
    }
  }
  void OnDone() override { delete this; }

 private:
  std::vector<grpc::ByteBuffer> messages_;
  size_t next_ = 0;
};

// Every AuditService method raw (see "raw messages" above).
using RawAuditService = pb::AuditService::WithRawCallbackMethod_QueryRecords<
    pb::AuditService::WithRawCallbackMethod_GetCheckpoint<pb::AuditService::WithRawCallbackMethod_GetInclusionProof<
        pb::AuditService::WithRawCallbackMethod_GetConsistencyProof<pb::AuditService::Service>>>>;

using RawKeyService = pb::KeyService::WithRawCallbackMethod_ListPublicKeys<pb::KeyService::Service>;

}  // namespace

class ProvenanceServices::Audit final : public RawAuditService {
 public:
  explicit Audit(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerWriteReactor<grpc::ByteBuffer>* QueryRecords(grpc::CallbackServerContext* sctx,
                                                           const grpc::ByteBuffer* raw) override {
    std::vector<pb::QueryRecordsResponse> messages;
    absl::Status status = BuildPage(sctx, *raw, &messages);
    std::vector<grpc::ByteBuffer> serialized;
    if (status.ok()) {
      for (const pb::QueryRecordsResponse& m : messages) serialized.push_back(Serialize(m));
    }
    return new QueryWriter(std::move(serialized), status);
  }

  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                          grpc::ByteBuffer* out) override {
    return AnswerNow<pb::GetCheckpointRequest, pb::Checkpoint>(
        ctx_, sctx, {Role::kAuditor}, "GetCheckpoint", raw, out,
        [this](const pb::GetCheckpointRequest& req, pb::Checkpoint* resp) {
          StoredCheckpoint cp;
          if (req.tree_size() == 0) {
            cp = ctx_.ledger->latest_checkpoint();
            if (cp.tree_size == 0) return absl::FailedPreconditionError("the audit log is empty");
          } else {
            auto at = ctx_.ledger->CheckpointAt(req.tree_size());
            if (!at.ok()) return at.status();
            cp = *at;
          }
          resp->set_note(cp.note);
          resp->set_origin(ctx_.ledger->log_origin());
          resp->set_tree_size(cp.tree_size);
          resp->set_root_hash(HashBytes(cp.root));
          return absl::OkStatus();
        });
  }

  grpc::ServerUnaryReactor* GetInclusionProof(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                              grpc::ByteBuffer* out) override {
    return AnswerNow<pb::GetInclusionProofRequest, pb::InclusionProof>(
        ctx_, sctx, {Role::kAuditor}, "GetInclusionProof", raw, out,
        [this](const pb::GetInclusionProofRequest& req, pb::InclusionProof* resp) {
          uint64_t size = req.tree_size() == 0 ? ctx_.ledger->latest_checkpoint().tree_size : req.tree_size();
          auto proof = ctx_.ledger->InclusionProof(req.index(), size);
          if (!proof.ok()) return proof.status();
          auto record = ctx_.ledger->GetRecord(req.index());
          if (!record.ok()) return record.status();
          if (!record->has_value()) return absl::DataLossError("record missing");
          resp->set_index(req.index());
          resp->set_tree_size(size);
          for (const Hash& h : *proof) resp->add_hashes(HashBytes(h));
          resp->set_record((*record)->record);
          resp->set_leaf_hash(HashBytes((*record)->leaf_hash));
          return absl::OkStatus();
        });
  }

  grpc::ServerUnaryReactor* GetConsistencyProof(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                                grpc::ByteBuffer* out) override {
    return AnswerNow<pb::GetConsistencyProofRequest, pb::ConsistencyProof>(
        ctx_, sctx, {Role::kAuditor}, "GetConsistencyProof", raw, out,
        [this](const pb::GetConsistencyProofRequest& req, pb::ConsistencyProof* resp) {
          uint64_t to = req.to_size() == 0 ? ctx_.ledger->latest_checkpoint().tree_size : req.to_size();
          auto proof = ctx_.ledger->ConsistencyProof(req.from_size(), to);
          if (!proof.ok()) return proof.status();
          resp->set_from_size(req.from_size());
          resp->set_to_size(to);
          for (const Hash& h : *proof) resp->add_hashes(HashBytes(h));
          return absl::OkStatus();
        });
  }

 private:
  absl::Status BuildPage(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer& raw,
                         std::vector<pb::QueryRecordsResponse>* messages) {
    if (auto s = RequireRole(Authenticate(ctx_, sctx), {Role::kAuditor}, "QueryRecords"); !s.ok()) return s;
    pb::QueryRecordsRequest req;
    if (auto s = ParseRequest(Bytes(raw), &req); !s.ok()) return s;
    auto page = ValidateQueryRecords(req);
    if (!page.ok()) return page.status();
    auto rows = ctx_.ledger->Query(page->filter, page->after, static_cast<int>(page->size) + 1);
    if (!rows.ok()) return rows.status();
    bool more = rows->size() > page->size;
    if (more) rows->resize(page->size);
    messages->emplace_back();
    for (const StoredRecord& row : *rows) {
      if (messages->back().entries_size() == kEntriesPerMessage) messages->emplace_back();
      pb::AuditEntry* e = messages->back().add_entries();
      e->set_index(row.index);
      e->set_record(row.record);
      e->set_leaf_hash(HashBytes(row.leaf_hash));
      if (auto rec = DecodeRecord(row.record); rec.ok()) FillRecord(*rec, e->mutable_decoded());
    }
    if (more) messages->back().set_next_page_token(RecordPageToken(rows->back().index));
    return absl::OkStatus();
  }

  const ServiceContext& ctx_;
};

// ===========================================================================
// KeyService
// ===========================================================================

class ProvenanceServices::Keys final : public RawKeyService {
 public:
  explicit Keys(const ServiceContext& ctx) : ctx_(ctx) {}

  grpc::ServerUnaryReactor* ListPublicKeys(grpc::CallbackServerContext* sctx, const grpc::ByteBuffer* raw,
                                           grpc::ByteBuffer* out) override {
    return AnswerNow<pb::ListPublicKeysRequest, pb::ListPublicKeysResponse>(
        ctx_, sctx, {Role::kWorker, Role::kAdmin, Role::kAuditor}, "ListPublicKeys", raw, out,
        [this](const pb::ListPublicKeysRequest&, pb::ListPublicKeysResponse* resp) {
          absl::Time now = ctx_.clock->Now();
          for (const PublishedKey& k : ctx_.token_keys) {
            if (!k.current && now >= k.publish_until) continue;
            pb::TokenPublicKey* key = resp->add_token_keys();
            key->set_key_id(token::TokenKeyId(*k.key));
            key->set_ed25519_public_key(k.key->raw());
            key->set_public_key_pem(k.key->ToPem());
            key->set_paserk("k4.public." + token::Base64UrlEncode(k.key->raw()));
            key->set_status(k.current ? pb::KEY_STATUS_CURRENT : pb::KEY_STATUS_PREVIOUS);
            if (!k.current) {
              SetTime(static_cast<uint64_t>(absl::ToUnixMicros(k.publish_until)), key->mutable_publish_until());
            }
          }
          resp->set_token_issuer(ctx_.token_issuer);
          resp->set_log_origin(ctx_.ledger->log_origin());
          resp->set_log_verifier_key(ctx_.ledger->log_verifier_key());
          return absl::OkStatus();
        });
  }

 private:
  const ServiceContext& ctx_;
};

// ===========================================================================

ProvenanceServices::ProvenanceServices(ServiceContext context)
    : ctx_(std::move(context)),
      verification_(std::make_unique<Verification>(ctx_)),
      registry_(std::make_unique<Registry>(ctx_)),
      audit_(std::make_unique<Audit>(ctx_)),
      keys_(std::make_unique<Keys>(ctx_)) {}

ProvenanceServices::~ProvenanceServices() = default;

std::vector<grpc::Service*> ProvenanceServices::services() {
  return {verification_.get(), registry_.get(), audit_.get(), keys_.get()};
}

}  // namespace ossgate::provenance
