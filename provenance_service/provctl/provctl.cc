// provctl: operator CLI for the provenance service. See `provctl help` and
// docs/provenance.md ("CLI"). Tables by default, --json for machine output.
// Flags may be spelled with '-' or '_' (--lfs-pointer == --lfs_pointer).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <span>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "inference_worker/gguf/gguf.h"
#include "ossgate/provenance/v1/provenance.grpc.pb.h"
#include "provenance_service/client/client.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/lfs_pointer.h"
#include "provenance_service/core/log_verifier.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/core/store.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"

// Connection.
ABSL_FLAG(std::string, server, "127.0.0.1:7443", "provenance service address");
ABSL_FLAG(std::string, ca, "", "CA certificate that signed the server certificate (PEM)");
ABSL_FLAG(std::string, cert, "", "client certificate (PEM); its SPIFFE URI SAN is your identity");
ABSL_FLAG(std::string, key, "", "client private key (PEM)");
ABSL_FLAG(std::string, server_name_override, "", "TLS name to expect in the server certificate");
ABSL_FLAG(bool, insecure_dev_loopback, false, "DEVELOPMENT: plaintext to a loopback dev server");
ABSL_FLAG(std::string, dev_identity, "", "DEVELOPMENT: identity to claim, spiffe://ossgate/role/<role>/<id>");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "per-call deadline");
ABSL_FLAG(bool, json, false, "print JSON instead of tables");
// keygen.
ABSL_FLAG(std::string, out, "", "keygen: output prefix (writes PREFIX.pem and PREFIX.pub.pem); "
                                "checkpoint show: also write the note here");
ABSL_FLAG(std::string, name, "", "keygen: note key name (the log origin) to print the verifier key for; "
                                 "verify: model name");
// Registry.
ABSL_FLAG(std::string, uri, "", "source URI, e.g. hf://openai/gpt-oss-20b");
ABSL_FLAG(std::string, source, "", "source URI of a file entry / filter");
ABSL_FLAG(std::string, path, "", "file path inside the source (empty = any path)");
ABSL_FLAG(std::string, sha256, "", "whole-file SHA-256, 64 lowercase hex digits");
ABSL_FLAG(uint64_t, size, 0, "file size in bytes");
ABSL_FLAG(std::string, lfs_pointer, "", "take sha256 and size from this Git LFS pointer file");
ABSL_FLAG(std::string, file, "", "hash this local file for sha256 and size");
ABSL_FLAG(std::string, description, "", "free-text description");
ABSL_FLAG(std::string, reason, "", "revocation reason");
ABSL_FLAG(std::string, family, "",
          "model family (the model's GGUF general.architecture, e.g. gpt-oss, qwen2, phi3): trust add-source, "
          "add-file (default with --file: read from the file's header), set-family; audit query: filter");
ABSL_FLAG(bool, files, false, "trust list: list files instead of sources");
ABSL_FLAG(bool, include_revoked, false, "trust list: include revoked entries");
// verify.
ABSL_FLAG(std::string, worker_id, "", "worker id (must match your certificate)");
ABSL_FLAG(std::string, token_out, "", "verify: write the approval token here");
// audit.
ABSL_FLAG(std::string, since, "", "audit query: RFC 3339 start time (inclusive)");
ABSL_FLAG(std::string, until, "", "audit query: RFC 3339 end time (exclusive)");
ABSL_FLAG(std::string, verdict, "", "audit query: accepted | rejected");
ABSL_FLAG(std::string, caller, "", "audit query: caller identity");
ABSL_FLAG(std::string, kind, "", "audit query: verify_model | registry_change");
ABSL_FLAG(int, limit, 100, "audit query: most records to print (pages are fetched as needed)");
ABSL_FLAG(uint64_t, index, 0, "audit proof: record index");
ABSL_FLAG(std::string, db, "", "audit verify: path of the service's SQLite database (offline)");
ABSL_FLAG(std::string, log_key, "", "note verifier key of the audit log: <name>+<hex id>+<base64>");
ABSL_FLAG(std::string, log_key_file, "", "file containing the log verifier key");
ABSL_FLAG(std::string, log_origin, "ossgate.local/provenance", "audit log origin");
ABSL_FLAG(std::string, trusted_checkpoint, "", "a checkpoint note saved earlier; the log must extend it");
// token verify.
ABSL_FLAG(std::string, token, "", "token verify: the token (or --token_file)");
ABSL_FLAG(std::string, token_file, "", "token verify: file containing the token");
ABSL_FLAG(std::string, pubkey, "", "token verify: token public key (PEM)");
ABSL_FLAG(std::string, issuer, "ossgate-provenance", "token verify: expected issuer");

namespace ossgate::provenance {
namespace {

namespace pb = ::ossgate::provenance::v1;
using token::HexEncode;

constexpr char kUsage[] = R"(provctl: operator CLI for the ossgate provenance service

  provctl keygen --out=PREFIX [--name=LOG_ORIGIN]
  provctl trust list [--files] [--source=URI] [--sha256=H] [--include_revoked]
  provctl trust add-source --uri=URI [--description=TEXT] [--family=F]
  provctl trust revoke-source --uri=URI --reason=TEXT
  provctl trust add-file --source=URI [--path=P] (--sha256=H --size=N | --lfs-pointer=FILE | --file=PATH) [--family=F]
  provctl trust set-family --source=URI [--path=P --sha256=H] --family=F   (the source, or one file entry)
  provctl trust revoke-file --source=URI [--path=P] --sha256=H --reason=TEXT
  provctl verify --name=N --source=URI (--sha256=H --size=N | --file=PATH) --worker_id=W [--token_out=F]
  provctl audit query [--since=T] [--until=T] [--sha256=H] [--source=URI] [--verdict=V] [--caller=C] [--kind=K]
                      [--family=F] [--limit=N]
  provctl audit proof --index=N --log_key=VKEY          (inclusion proof, verified locally)
  provctl audit consistency --trusted_checkpoint=FILE --log_key=VKEY
  provctl audit verify --db=FILE --log_key=VKEY [--trusted_checkpoint=FILE]   (offline, whole log)
  provctl checkpoint show [--out=FILE]
  provctl keys list
  provctl token verify (--token=T | --token_file=F) --pubkey=PEM --worker_id=W [--file=PATH | --sha256=H --size=N]

Connection flags: --server --ca --cert --key [--server_name_override] [--timeout]
Development:      --insecure_dev_loopback --dev_identity=spiffe://ossgate/role/<role>/<id>
Output:           tables by default, --json for JSON. Exit status: 0 ok, 1 failure/rejection, 2 usage.
Families: a file is approved for one model family (the GGUF general.architecture the worker checks): the
family of its entry, else of its source, else gpt-oss (entries written before families). add-file --file reads
it from the file's header unless --family names it (a family the header contradicts is refused).
)";

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "provctl: %s\n", s.ToString().c_str());
  return 1;
}
int Fail(const grpc::Status& s) {
  std::string code = absl::StatusCodeToString(static_cast<absl::StatusCode>(s.error_code()));
  std::fprintf(stderr, "provctl: %s: %s\n", code.c_str(), s.error_message().c_str());
  return 1;
}
int Usage(const std::string& msg) {
  std::fprintf(stderr, "provctl: %s\n\n%s", msg.c_str(), kUsage);
  return 2;
}

void PrintJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, opts);
  std::cout << out;
}

// Minimal aligned table.
class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  void Print() const {
    std::vector<size_t> w(rows_[0].size(), 0);
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    }
    for (const auto& r : rows_) {
      std::string line;
      for (size_t i = 0; i < r.size(); ++i) {
        line += r[i];
        if (i + 1 < r.size()) line += std::string(w[i] - r[i].size() + 2, ' ');
      }
      std::cout << line << "\n";
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string FormatTime(const google::protobuf::Timestamp& ts) {
  if (ts.seconds() == 0 && ts.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(ts.seconds()), absl::UTCTimeZone());
}

std::string Short(const std::string& s, size_t n = 16) { return s.size() <= n ? s : s.substr(0, n) + "…"; }

ClientOptions Options() {
  ClientOptions o;
  o.server = absl::GetFlag(FLAGS_server);
  o.ca_file = absl::GetFlag(FLAGS_ca);
  o.cert_file = absl::GetFlag(FLAGS_cert);
  o.key_file = absl::GetFlag(FLAGS_key);
  o.server_name_override = absl::GetFlag(FLAGS_server_name_override);
  o.insecure_dev_loopback = absl::GetFlag(FLAGS_insecure_dev_loopback);
  o.dev_identity = absl::GetFlag(FLAGS_dev_identity);
  o.timeout = absl::GetFlag(FLAGS_timeout);
  return o;
}

template <typename Service>
absl::StatusOr<std::unique_ptr<typename Service::Stub>> Stub() {
  auto channel = CreateProvenanceChannel(Options());
  if (!channel.ok()) return channel.status();
  return Service::NewStub(*channel);
}

absl::StatusOr<NoteVerifier> LogVerifier() {
  std::string vkey = absl::GetFlag(FLAGS_log_key);
  if (vkey.empty() && !absl::GetFlag(FLAGS_log_key_file).empty()) {
    auto text = token::ReadSmallFile(absl::GetFlag(FLAGS_log_key_file));
    if (!text.ok()) return text.status();
    vkey = *text;
    while (!vkey.empty() && (vkey.back() == '\n' || vkey.back() == ' ')) vkey.pop_back();
  }
  if (vkey.empty()) {
    return absl::InvalidArgumentError("--log_key (or --log_key_file) is required: get it out of band, "
                                      "e.g. from your deployment or `provctl keys list`");
  }
  return NoteVerifier::FromVerifierKey(vkey);
}

// sha256/size from --sha256/--size, --lfs-pointer or --file.
absl::Status ResolveDigest(std::string* sha, uint64_t* size) {
  *sha = absl::GetFlag(FLAGS_sha256);
  *size = absl::GetFlag(FLAGS_size);
  const std::string lfs = absl::GetFlag(FLAGS_lfs_pointer);
  const std::string file = absl::GetFlag(FLAGS_file);
  int sources = (!sha->empty() || *size != 0) + !lfs.empty() + !file.empty();
  if (sources != 1) return absl::InvalidArgumentError("give exactly one of --sha256/--size, --lfs-pointer, --file");
  if (!lfs.empty()) {
    auto text = token::ReadSmallFile(lfs, 4096);
    if (!text.ok()) return text.status();
    auto p = ParseLfsPointer(*text);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(lfs, ": ", p.status().message()));
    *sha = p->sha256;
    *size = p->size;
  } else if (!file.empty()) {
    auto digest = token::Sha256File(file, size);
    if (!digest.ok()) return digest.status();
    *sha = HexEncode(*digest);
  }
  return absl::OkStatus();
}

// general.architecture from the GGUF header of `path`, read with the
// worker's hostile-input reader from as much of the file's start as the
// header needs (never the tensor data).
absl::StatusOr<std::string> ReadGgufArchitecture(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const auto end = in.tellg();
  if (end < 0) return absl::InternalError(absl::StrCat("cannot size ", path));
  const uint64_t size = static_cast<uint64_t>(end);
  constexpr uint64_t kMaxHeaderBytes = uint64_t{1} << 30;
  std::vector<uint8_t> prefix;
  for (uint64_t want = std::min<uint64_t>(size, 1 << 20);; want = std::min(size, want * 4)) {
    const uint64_t have = prefix.size();
    prefix.resize(want);
    in.seekg(static_cast<std::streamoff>(have));
    if (!in.read(reinterpret_cast<char*>(prefix.data() + have), static_cast<std::streamsize>(want - have))) {
      return absl::DataLossError(absl::StrCat("cannot read ", path));
    }
    auto header = gguf::GgufFile::ParseHeader(std::span<const uint8_t>(prefix), size, prefix.data());
    if (header.ok()) {
      auto arch = header->GetString("general.architecture");
      if (!arch.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", arch.status().message()));
      if (!token::IsModelFamily(*arch)) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": general.architecture \"", Sanitize(*arch, 64),
                                                       "\" is not a model family name"));
      }
      return *arch;
    }
    if (header.status().code() != absl::StatusCode::kOutOfRange || want == size || want >= kMaxHeaderBytes) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": ", header.status().message()));
    }
  }
}

// The family for add-file: --family, or the header of --file; both must agree.
absl::StatusOr<std::string> ResolveFamily() {
  const std::string family = absl::GetFlag(FLAGS_family);
  const std::string file = absl::GetFlag(FLAGS_file);
  if (file.empty()) return family;  // the service checks its form; empty = the source's
  auto arch = ReadGgufArchitecture(file);
  if (!arch.ok()) {
    if (!family.empty()) return family;  // not readable as GGUF, but named explicitly
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read the model family from --file: ", arch.status().message(),
        "; pass --family=F (the model's GGUF general.architecture, e.g. gpt-oss, qwen2, phi3) to name it"));
  }
  if (!family.empty() && family != *arch) {
    return absl::InvalidArgumentError(absl::StrCat("--family=", family, " contradicts ", file,
                                                   ": its general.architecture is ", *arch,
                                                   " (a file is approved for the family its header names)"));
  }
  return *arch;
}

// "qwen2", "qwen2 (source)" or "gpt-oss (default)": what approvals name and why.
std::string FamilyColumn(const pb::TrustedFile& f) {
  if (!f.family().empty()) return f.family();
  return absl::StrCat(f.approved_family(), f.approved_family() == token::kLegacyModelFamily ? " (default)" : " (source)");
}

// ---- commands ----

int Keygen() {
  std::string out = absl::GetFlag(FLAGS_out);
  if (out.empty()) return Usage("keygen needs --out=PREFIX");
  auto key = token::Ed25519PrivateKey::Generate();
  if (!key.ok()) return Fail(key.status());
  if (auto s = token::WriteFileAtomically(out + ".pem", key->ToPem(), 0600); !s.ok()) return Fail(s);
  if (auto s = token::WriteFileAtomically(out + ".pub.pem", key->public_key().ToPem(), 0644); !s.ok()) return Fail(s);
  std::cout << "private key:   " << out << ".pem (mode 0600)\n"
            << "public key:    " << out << ".pub.pem\n"
            << "token key id:  " << token::TokenKeyId(key->public_key()) << "\n"
            << "paserk:        k4.public." << token::Base64UrlEncode(key->public_key().raw()) << "\n";
  std::string name = absl::GetFlag(FLAGS_name);
  if (!name.empty()) {
    auto shared = std::make_shared<const token::Ed25519PrivateKey>(*std::move(key));
    auto signer = NoteSigner::Create(name, shared);
    if (!signer.ok()) return Fail(signer.status());
    std::cout << "log verifier key (as checkpoint key for origin " << name << "):\n  " << signer->VerifierKey() << "\n";
  }
  return 0;
}

void PrintChange(const pb::RegistryChangeResponse& r) {
  if (absl::GetFlag(FLAGS_json)) return PrintJson(r);
  std::cout << "applied: audit record " << r.log_index() << ", policy version " << r.policy_version() << "\n";
  if (r.has_file()) {
    std::cout << "  approvals of this file name model family " << FamilyColumn(r.file()) << "\n";
  } else if (r.has_source() && !r.source().family().empty()) {
    std::cout << "  model family of the source's files: " << r.source().family() << "\n";
  }
}

int TrustCommand(const std::string& sub) {
  // add-file hashes a local file first (minutes for a large model): the
  // per-call deadline starts after it.
  std::string sha;
  uint64_t size = 0;
  std::string family = absl::GetFlag(FLAGS_family);
  if (sub == "add-file") {
    // The family first: reading a header is quick, hashing a model is not.
    auto resolved = ResolveFamily();
    if (!resolved.ok()) return Fail(resolved.status());
    family = *resolved;
    if (auto st = ResolveDigest(&sha, &size); !st.ok()) return Fail(st);
  }
  auto stub = Stub<pb::RegistryService>();
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  ConfigureContext(Options(), &ctx);
  if (sub == "add-source") {
    pb::AddSourceRequest req;
    req.set_uri(absl::GetFlag(FLAGS_uri));
    req.set_description(absl::GetFlag(FLAGS_description));
    req.set_family(family);
    pb::RegistryChangeResponse resp;
    grpc::Status s = (*stub)->AddSource(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    PrintChange(resp);
    return 0;
  }
  if (sub == "revoke-source") {
    pb::RevokeSourceRequest req;
    req.set_uri(absl::GetFlag(FLAGS_uri));
    req.set_reason(absl::GetFlag(FLAGS_reason));
    pb::RegistryChangeResponse resp;
    grpc::Status s = (*stub)->RevokeSource(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    PrintChange(resp);
    return 0;
  }
  if (sub == "add-file") {
    pb::AddFileRequest req;
    req.set_source_uri(absl::GetFlag(FLAGS_source));
    req.set_path(absl::GetFlag(FLAGS_path));
    req.set_sha256(sha);
    req.set_size_bytes(size);
    req.set_description(absl::GetFlag(FLAGS_description));
    req.set_family(family);
    pb::RegistryChangeResponse resp;
    grpc::Status s = (*stub)->AddFile(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    PrintChange(resp);
    return 0;
  }
  if (sub == "set-family") {
    pb::SetFamilyRequest req;
    req.set_source_uri(absl::GetFlag(FLAGS_source));
    req.set_path(absl::GetFlag(FLAGS_path));
    req.set_sha256(absl::GetFlag(FLAGS_sha256));
    req.set_family(family);
    pb::RegistryChangeResponse resp;
    grpc::Status s = (*stub)->SetFamily(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    PrintChange(resp);
    return 0;
  }
  if (sub == "revoke-file") {
    pb::RevokeFileRequest req;
    req.set_source_uri(absl::GetFlag(FLAGS_source));
    req.set_path(absl::GetFlag(FLAGS_path));
    req.set_sha256(absl::GetFlag(FLAGS_sha256));
    req.set_reason(absl::GetFlag(FLAGS_reason));
    pb::RegistryChangeResponse resp;
    grpc::Status s = (*stub)->RevokeFile(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    PrintChange(resp);
    return 0;
  }
  if (sub == "list" && !absl::GetFlag(FLAGS_files)) {
    pb::ListSourcesRequest req;
    req.set_include_revoked(absl::GetFlag(FLAGS_include_revoked));
    req.set_page_size(1000);
    pb::ListSourcesResponse resp;
    grpc::Status s = (*stub)->ListSources(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(resp);
      return 0;
    }
    Table t({"SOURCE", "FAMILY", "STATUS", "ADDED", "ADDED BY", "DESCRIPTION"});
    for (const auto& src : resp.sources()) {
      t.Add({src.uri(), src.family().empty() ? "-" : src.family(),
             src.revoked() ? "revoked: " + src.revoke_reason() : "trusted", FormatTime(src.added_at()),
             src.added_by(), src.description()});
    }
    t.Print();
    return 0;
  }
  if (sub == "list") {
    pb::ListFilesRequest req;
    req.set_source_uri(absl::GetFlag(FLAGS_source));
    req.set_sha256(absl::GetFlag(FLAGS_sha256));
    req.set_include_revoked(absl::GetFlag(FLAGS_include_revoked));
    req.set_page_size(1000);
    pb::ListFilesResponse resp;
    grpc::Status s = (*stub)->ListFiles(&ctx, req, &resp);
    if (!s.ok()) return Fail(s);
    if (absl::GetFlag(FLAGS_json)) {
      PrintJson(resp);
      return 0;
    }
    Table t({"SOURCE", "PATH", "SHA256", "SIZE", "FAMILY", "STATUS", "ADDED BY"});
    for (const auto& f : resp.files()) {
      t.Add({f.source_uri(), f.path().empty() ? "*" : f.path(), f.sha256(), std::to_string(f.size_bytes()),
             FamilyColumn(f), f.revoked() ? "revoked: " + f.revoke_reason() : "trusted", f.added_by()});
    }
    t.Print();
    return 0;
  }
  return Usage("unknown trust subcommand " + sub);
}

int Verify() {
  std::string sha;
  uint64_t size = 0;
  if (auto st = ResolveDigest(&sha, &size); !st.ok()) return Fail(st);
  auto stub = Stub<pb::VerificationService>();
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  ConfigureContext(Options(), &ctx);
  pb::ModelDescriptor req;
  req.set_name(absl::GetFlag(FLAGS_name));
  req.set_source_uri(absl::GetFlag(FLAGS_source));
  req.set_sha256(sha);
  req.set_size_bytes(size);
  req.set_worker_id(absl::GetFlag(FLAGS_worker_id));
  pb::VerifyModelResponse resp;
  grpc::Status s = (*stub)->VerifyModel(&ctx, req, &resp);
  if (!s.ok()) return Fail(s);
  if (!absl::GetFlag(FLAGS_token_out).empty() && resp.verified()) {
    if (auto st = token::WriteFileAtomically(absl::GetFlag(FLAGS_token_out), resp.approval_token(), 0600); !st.ok()) {
      return Fail(st);
    }
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(resp);
  } else {
    std::cout << (resp.verified() ? "VERIFIED" : "REJECTED") << "  reason=" << pb::Reason_Name(resp.reason())
              << "  audit record " << resp.log_index() << "  policy version " << resp.policy_version() << "\n";
    if (!resp.detail().empty()) std::cout << "  " << resp.detail() << "\n";
    if (resp.verified()) {
      std::cout << "  model family " << resp.model_family() << "\n";
      std::cout << "  token key " << resp.token_key_id() << ", expires " << FormatTime(resp.token_expires_at())
                << "\n  " << resp.approval_token() << "\n";
    }
  }
  return resp.verified() ? 0 : 1;
}

absl::StatusOr<google::protobuf::Timestamp> ParseFlagTime(const std::string& s) {
  auto t = token::ParseTokenTime(s);
  if (!t.ok()) return t.status();
  google::protobuf::Timestamp ts;
  ts.set_seconds(absl::ToUnixSeconds(*t));
  return ts;
}

int AuditQuery() {
  auto stub = Stub<pb::AuditService>();
  if (!stub.ok()) return Fail(stub.status());
  pb::QueryRecordsRequest req;
  if (!absl::GetFlag(FLAGS_since).empty()) {
    auto t = ParseFlagTime(absl::GetFlag(FLAGS_since));
    if (!t.ok()) return Fail(t.status());
    *req.mutable_start_time() = *t;
  }
  if (!absl::GetFlag(FLAGS_until).empty()) {
    auto t = ParseFlagTime(absl::GetFlag(FLAGS_until));
    if (!t.ok()) return Fail(t.status());
    *req.mutable_end_time() = *t;
  }
  req.set_model_sha256(absl::GetFlag(FLAGS_sha256));
  req.set_source_uri(absl::GetFlag(FLAGS_source));
  req.set_caller(absl::GetFlag(FLAGS_caller));
  req.set_family(absl::GetFlag(FLAGS_family));
  const std::string verdict = absl::GetFlag(FLAGS_verdict);
  if (verdict == "accepted") req.set_verdict(pb::VERDICT_ACCEPTED);
  else if (verdict == "rejected") req.set_verdict(pb::VERDICT_REJECTED);
  else if (!verdict.empty()) return Usage("--verdict must be accepted or rejected");
  const std::string kind = absl::GetFlag(FLAGS_kind);
  if (kind == "verify_model") req.set_kind(pb::RECORD_KIND_VERIFY_MODEL);
  else if (kind == "registry_change") req.set_kind(pb::RECORD_KIND_REGISTRY_CHANGE);
  else if (!kind.empty()) return Usage("--kind must be verify_model or registry_change");
  int remaining = absl::GetFlag(FLAGS_limit);
  Table t({"INDEX", "TIME", "KIND", "VERDICT", "REASON", "CALLER", "SUBJECT"});
  pb::QueryRecordsResponse all;
  while (remaining > 0) {
    req.set_page_size(static_cast<uint32_t>(std::min(remaining, 1000)));
    grpc::ClientContext ctx;
    ConfigureContext(Options(), &ctx);
    auto reader = (*stub)->QueryRecords(&ctx, req);
    pb::QueryRecordsResponse msg;
    std::string next;
    while (reader->Read(&msg)) {
      for (const auto& e : msg.entries()) {
        --remaining;
        *all.add_entries() = e;
        const auto& d = e.decoded();
        std::string subject = d.kind() == pb::RECORD_KIND_VERIFY_MODEL
                                  ? absl::StrCat(d.request().source_uri(), " ", Short(d.request().sha256(), 12))
                                  : absl::StrCat(d.action(), " ", d.target_uri(), d.target_path().empty() ? "" : "/",
                                                 d.target_path());
        if (!d.family().empty()) absl::StrAppend(&subject, " family=", d.family());
        t.Add({std::to_string(e.index()), FormatTime(d.time()),
               d.kind() == pb::RECORD_KIND_VERIFY_MODEL ? "verify" : "registry",
               d.verdict() == pb::VERDICT_ACCEPTED ? "accepted" : "rejected", d.reason(), d.caller(), subject});
      }
      if (!msg.next_page_token().empty()) next = msg.next_page_token();
    }
    grpc::Status s = reader->Finish();
    if (!s.ok()) return Fail(s);
    if (next.empty()) break;
    req.set_page_token(next);
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(all);
  } else {
    t.Print();
  }
  return 0;
}

absl::StatusOr<pb::Checkpoint> FetchCheckpoint(pb::AuditService::Stub& stub, uint64_t size = 0) {
  grpc::ClientContext ctx;
  ConfigureContext(Options(), &ctx);
  pb::GetCheckpointRequest req;
  req.set_tree_size(size);
  pb::Checkpoint cp;
  grpc::Status s = stub.GetCheckpoint(&ctx, req, &cp);
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
  return cp;
}

int AuditProof() {
  auto verifier = LogVerifier();
  if (!verifier.ok()) return Fail(verifier.status());
  auto stub = Stub<pb::AuditService>();
  if (!stub.ok()) return Fail(stub.status());
  auto cp = FetchCheckpoint(**stub);
  if (!cp.ok()) return Fail(cp.status());
  auto body = OpenCheckpoint(*verifier, cp->note(), absl::GetFlag(FLAGS_log_origin));
  if (!body.ok()) return Fail(body.status());
  grpc::ClientContext ctx;
  ConfigureContext(Options(), &ctx);
  pb::GetInclusionProofRequest req;
  req.set_index(absl::GetFlag(FLAGS_index));
  req.set_tree_size(body->size);
  pb::InclusionProof proof;
  grpc::Status s = (*stub)->GetInclusionProof(&ctx, req, &proof);
  if (!s.ok()) return Fail(s);
  std::vector<Hash> path;
  for (const auto& h : proof.hashes()) {
    auto hh = HashFromBytes(h);
    if (!hh.ok()) return Fail(hh.status());
    path.push_back(*hh);
  }
  absl::Status v = VerifyInclusion(proof.index(), body->size, LeafHash(proof.record()), path, body->root);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(proof);
  } else {
    std::cout << "record " << proof.index() << ": " << proof.record() << "\n"
              << "checkpoint: size " << body->size << ", root " << HashHex(body->root) << " (signature OK)\n"
              << "inclusion proof (" << path.size() << " hashes): " << (v.ok() ? "VALID" : v.ToString()) << "\n";
  }
  return v.ok() ? 0 : 1;
}

int AuditConsistency() {
  auto verifier = LogVerifier();
  if (!verifier.ok()) return Fail(verifier.status());
  auto old_note = token::ReadSmallFile(absl::GetFlag(FLAGS_trusted_checkpoint));
  if (!old_note.ok()) return Usage("audit consistency needs --trusted_checkpoint=FILE (a saved checkpoint note)");
  const std::string origin = absl::GetFlag(FLAGS_log_origin);
  auto old_body = OpenCheckpoint(*verifier, *old_note, origin);
  if (!old_body.ok()) return Fail(old_body.status());
  auto stub = Stub<pb::AuditService>();
  if (!stub.ok()) return Fail(stub.status());
  auto cp = FetchCheckpoint(**stub);
  if (!cp.ok()) return Fail(cp.status());
  auto new_body = OpenCheckpoint(*verifier, cp->note(), origin);
  if (!new_body.ok()) return Fail(new_body.status());
  std::vector<Hash> path;
  if (old_body->size > 0 && old_body->size < new_body->size) {
    grpc::ClientContext ctx;
    ConfigureContext(Options(), &ctx);
    pb::GetConsistencyProofRequest req;
    req.set_from_size(old_body->size);
    req.set_to_size(new_body->size);
    pb::ConsistencyProof proof;
    grpc::Status s = (*stub)->GetConsistencyProof(&ctx, req, &proof);
    if (!s.ok()) return Fail(s);
    for (const auto& h : proof.hashes()) {
      auto hh = HashFromBytes(h);
      if (!hh.ok()) return Fail(hh.status());
      path.push_back(*hh);
    }
  }
  absl::Status v = VerifyConsistency(old_body->size, new_body->size, old_body->root, new_body->root, path);
  std::cout << "trusted checkpoint size " << old_body->size << " -> latest size " << new_body->size << ": "
            << (v.ok() ? "CONSISTENT (append-only)" : v.ToString()) << "\n";
  if (v.ok() && !absl::GetFlag(FLAGS_out).empty()) {
    if (auto st = token::WriteFileAtomically(absl::GetFlag(FLAGS_out), cp->note(), 0644); !st.ok()) return Fail(st);
  }
  return v.ok() ? 0 : 1;
}

int AuditVerify() {
  const std::string db = absl::GetFlag(FLAGS_db);
  if (db.empty()) return Usage("audit verify needs --db=FILE (the service's database; read-only access suffices)");
  auto verifier = LogVerifier();
  if (!verifier.ok()) return Fail(verifier.status());
  std::string trusted;
  if (!absl::GetFlag(FLAGS_trusted_checkpoint).empty()) {
    auto note = token::ReadSmallFile(absl::GetFlag(FLAGS_trusted_checkpoint));
    if (!note.ok()) return Fail(note.status());
    trusted = *note;
  }
  auto store = Store::Open(db, /*read_only=*/true);
  if (!store.ok()) return Fail(store.status());
  auto report = VerifyStoredLog(**store, *verifier, absl::GetFlag(FLAGS_log_origin), trusted);
  if (!report.ok()) return Fail(report.status());
  if (absl::GetFlag(FLAGS_json)) {
    std::cout << "{\"ok\":" << (report->ok ? "true" : "false") << ",\"records\":" << report->records
              << ",\"checkpoints\":" << report->checkpoints << ",\"verified_size\":" << report->verified_size;
    if (report->first_bad_index) {
      std::cout << ",\"first_tampered_record\":" << *report->first_bad_index
                << ",\"exact\":" << (report->exact ? "true" : "false");
    }
    std::cout << ",\"problem\":\"" << report->problem << "\",\"root\":\"" << report->root_hex << "\"}\n";
  } else if (report->ok) {
    std::cout << "OK: " << report->records << " records, " << report->checkpoints
              << " signed checkpoints verified; root " << report->root_hex << "\n";
  } else {
    std::cout << "TAMPERED: " << report->problem << "\n";
    if (report->first_bad_index) {
      std::cout << (report->exact ? "first tampered record: " : "first tampered record is at or after: ")
                << *report->first_bad_index << "\n";
    }
  }
  return report->ok ? 0 : 1;
}

int CheckpointShow() {
  auto stub = Stub<pb::AuditService>();
  if (!stub.ok()) return Fail(stub.status());
  auto cp = FetchCheckpoint(**stub);
  if (!cp.ok()) return Fail(cp.status());
  if (!absl::GetFlag(FLAGS_out).empty()) {
    if (auto st = token::WriteFileAtomically(absl::GetFlag(FLAGS_out), cp->note(), 0644); !st.ok()) return Fail(st);
  }
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(*cp);
  } else {
    std::cout << cp->note();
  }
  return 0;
}

int KeysList() {
  auto stub = Stub<pb::KeyService>();
  if (!stub.ok()) return Fail(stub.status());
  grpc::ClientContext ctx;
  ConfigureContext(Options(), &ctx);
  pb::ListPublicKeysResponse resp;
  grpc::Status s = (*stub)->ListPublicKeys(&ctx, pb::ListPublicKeysRequest(), &resp);
  if (!s.ok()) return Fail(s);
  if (absl::GetFlag(FLAGS_json)) {
    PrintJson(resp);
    return 0;
  }
  Table t({"KEY ID", "STATUS", "PUBLISHED UNTIL", "PASERK"});
  for (const auto& k : resp.token_keys()) {
    t.Add({k.key_id(), k.status() == pb::KEY_STATUS_CURRENT ? "current" : "previous", FormatTime(k.publish_until()),
           k.paserk()});
  }
  t.Print();
  std::cout << "token issuer:     " << resp.token_issuer() << "\nlog origin:       " << resp.log_origin()
            << "\nlog verifier key: " << resp.log_verifier_key() << "\n";
  return 0;
}

int TokenVerify() {
  std::string tok = absl::GetFlag(FLAGS_token);
  if (tok.empty() && !absl::GetFlag(FLAGS_token_file).empty()) {
    auto text = token::ReadSmallFile(absl::GetFlag(FLAGS_token_file), 64 * 1024);
    if (!text.ok()) return Fail(text.status());
    tok = *text;
    while (!tok.empty() && (tok.back() == '\n' || tok.back() == '\r')) tok.pop_back();
  }
  if (tok.empty() || absl::GetFlag(FLAGS_pubkey).empty() || absl::GetFlag(FLAGS_worker_id).empty()) {
    return Usage("token verify needs --token (or --token_file), --pubkey and --worker_id");
  }
  auto pk = token::Ed25519PublicKey::LoadPemFile(absl::GetFlag(FLAGS_pubkey));
  if (!pk.ok()) return Fail(pk.status());
  token::ApprovalTokenVerifier verifier;
  verifier.AddKey(*std::move(pk));
  token::ApprovalExpectations expect;
  expect.worker_id = absl::GetFlag(FLAGS_worker_id);
  expect.issuer = absl::GetFlag(FLAGS_issuer);
  if (!absl::GetFlag(FLAGS_file).empty() || !absl::GetFlag(FLAGS_lfs_pointer).empty() ||
      !absl::GetFlag(FLAGS_sha256).empty()) {
    // Check the token against the file the caller is about to load.
    if (auto st = ResolveDigest(&expect.model_sha256, &expect.model_size); !st.ok()) return Fail(st);
  }
  auto claims = verifier.Verify(tok, expect, absl::Now());
  if (!claims.ok()) return Fail(claims.status());
  std::cout << "VALID token " << claims->token_id << " for worker " << claims->worker_id << "\n  model "
            << claims->model_sha256 << " (" << claims->model_size << " bytes) from " << claims->source_uri
            << "\n  model family " << claims->model_family
            << (claims->model_family_implied ? " (no family claim: a token of a service before families)" : "")
            << "\n  audit record " << claims->log_index << " in " << claims->log_origin << ", expires "
            << token::FormatTokenTime(claims->expires_at) << "\n";
  return 0;
}

int Dispatch(const std::vector<char*>& args) {
  if (args.size() < 2) return Usage("missing command");
  const std::string cmd = args[1];
  const std::string sub = args.size() > 2 ? args[2] : "";
  if (cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  if (cmd == "keygen") return Keygen();
  if (cmd == "trust") return TrustCommand(sub);
  if (cmd == "verify") return Verify();
  if (cmd == "audit" && sub == "query") return AuditQuery();
  if (cmd == "audit" && sub == "proof") return AuditProof();
  if (cmd == "audit" && sub == "consistency") return AuditConsistency();
  if (cmd == "audit" && sub == "verify") return AuditVerify();
  if (cmd == "checkpoint" && sub == "show") return CheckpointShow();
  if (cmd == "keys" && sub == "list") return KeysList();
  if (cmd == "token" && sub == "verify") return TokenVerify();
  return Usage("unknown command: " + absl::StrJoin(std::vector<std::string>(args.begin() + 1, args.end()), " "));
}

}  // namespace
}  // namespace ossgate::provenance

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("provctl <command> [flags]; see `provctl help`");
  // Accept --lfs-pointer as well as --lfs_pointer.
  std::vector<std::string> storage(argv, argv + argc);
  std::vector<char*> normalized;
  for (std::string& a : storage) {
    if (a.rfind("--", 0) == 0) {
      size_t eq = a.find('=');
      for (size_t i = 2; i < a.size() && i < eq; ++i) {
        if (a[i] == '-') a[i] = '_';
      }
    }
    normalized.push_back(a.data());
  }
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(normalized.size()), normalized.data());
  return ossgate::provenance::Dispatch(positional);
}
