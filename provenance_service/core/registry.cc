#include "provenance_service/core/registry.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

absl::Status FieldError(std::string_view field, const absl::Status& s) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), ": ", s.message()));
}

std::string JoinFrom(const std::vector<std::string>& segs, size_t from) {
  std::string out;
  for (size_t i = from; i < segs.size(); ++i) {
    if (i > from) out.push_back('/');
    out += segs[i];
  }
  return out;
}

absl::Status ValidateSha(std::string_view field, std::string_view sha) {
  if (!token::IsSha256Hex(sha)) {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ": must be 64 lowercase hex digits (got ", sha.size(), " bytes)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view VerifyReasonCode(VerifyReason r) {
  switch (r) {
    case VerifyReason::kVerified: return "verified";
    case VerifyReason::kUntrustedSource: return "untrusted_source";
    case VerifyReason::kUnknownHash: return "unknown_hash";
    case VerifyReason::kHashMismatch: return "hash_mismatch";
    case VerifyReason::kSizeMismatch: return "size_mismatch";
    case VerifyReason::kRevoked: return "revoked";
    case VerifyReason::kMalformedRequest: return "malformed_request";
    case VerifyReason::kPermissionDenied: return "permission_denied";
  }
  return "unknown";
}

std::optional<VerifyReason> VerifyReasonFromCode(std::string_view code) {
  for (VerifyReason r : {VerifyReason::kVerified, VerifyReason::kUntrustedSource,
                         VerifyReason::kUnknownHash, VerifyReason::kHashMismatch,
                         VerifyReason::kSizeMismatch, VerifyReason::kRevoked,
                         VerifyReason::kMalformedRequest, VerifyReason::kPermissionDenied}) {
    if (VerifyReasonCode(r) == code) return r;
  }
  return std::nullopt;
}

absl::Status ValidateVerifyRequest(const VerifyRequest& r) {
  if (auto s = ValidateName(r.name); !s.ok()) return FieldError("name", s);
  if (auto s = ParseModelFileUri(r.source_uri); !s.ok()) return FieldError("source_uri", s.status());
  if (auto s = ValidateSha("sha256", r.sha256); !s.ok()) return s;
  if (r.size == 0) return absl::InvalidArgumentError("size_bytes: must be > 0");
  if (auto s = ValidateName(r.worker_id); !s.ok()) return FieldError("worker_id", s);
  return absl::OkStatus();
}

Decision Evaluate(const RegistryState& state, const VerifyRequest& request) {
  Decision d;
  auto uri = ParseModelFileUri(request.source_uri);
  if (!uri.ok()) {  // callers validate first; stay safe anyway
    d.reason = VerifyReason::kMalformedRequest;
    d.detail = absl::StrCat("source_uri: ", uri.status().message());
    return d;
  }
  if (!IsTrustableScheme(uri->scheme)) {
    d.reason = VerifyReason::kUntrustedSource;
    d.detail = absl::StrCat(std::string(SchemeName(uri->scheme)),
                            ":// sources are never trusted, even for registered hashes");
    return d;
  }
  // Covering sources, most specific first. A file must lie strictly inside.
  std::vector<const SourceEntry*> covering;
  std::vector<std::string> rel_paths;
  for (size_t n = uri->segments.size() - 1; n >= 1; --n) {
    auto it = state.sources.find(uri->PrefixLocator(n));
    if (it != state.sources.end()) {
      covering.push_back(&it->second);
      rel_paths.push_back(JoinFrom(uri->segments, n));
    }
  }
  if (covering.empty()) {
    d.reason = VerifyReason::kUntrustedSource;
    d.detail = absl::StrCat("no trusted source covers ", uri->Locator());
    return d;
  }
  d.source = *covering.front();
  d.relative_path = rel_paths.front();
  for (const SourceEntry* s : covering) {
    if (s->revoked) {
      d.reason = VerifyReason::kRevoked;
      d.source = *s;
      d.detail = absl::StrCat("source ", s->uri, " was revoked: ", s->revoke_reason);
      return d;
    }
  }
  // Entries with this hash whose path matches.
  std::vector<const FileEntry*> with_hash;
  for (size_t i = 0; i < covering.size(); ++i) {
    for (const std::string& path : {rel_paths[i], std::string()}) {
      auto it = state.files.find(FileKey{covering[i]->uri, path, request.sha256});
      if (it != state.files.end()) with_hash.push_back(&it->second);
    }
  }
  auto pick = [&](const FileEntry* f, size_t) {
    d.file = *f;
    for (size_t i = 0; i < covering.size(); ++i) {
      if (covering[i]->uri == f->key.source_uri) {
        d.source = *covering[i];
        d.relative_path = rel_paths[i];
      }
    }
  };
  for (const FileEntry* f : with_hash) {
    if (f->revoked) {
      pick(f, 0);
      d.reason = VerifyReason::kRevoked;
      d.detail = absl::StrCat("file entry was revoked: ", f->revoke_reason);
      return d;
    }
  }
  for (const FileEntry* f : with_hash) {
    if (f->size == request.size) {
      pick(f, 0);
      d.reason = VerifyReason::kVerified;
      d.family = ApprovedFamily(state, *f);
      return d;
    }
  }
  if (!with_hash.empty()) {
    pick(with_hash.front(), 0);
    d.reason = VerifyReason::kSizeMismatch;
    d.detail = absl::StrCat("registered size is ", with_hash.front()->size, " bytes, request says ",
                            request.size);
    return d;
  }
  // Another hash registered for this exact path?
  for (size_t i = 0; i < covering.size(); ++i) {
    FileKey lo{covering[i]->uri, rel_paths[i], ""};
    for (auto it = state.files.lower_bound(lo);
         it != state.files.end() && it->first.source_uri == lo.source_uri && it->first.path == lo.path;
         ++it) {
      if (it->second.revoked) continue;
      pick(&it->second, 0);
      d.reason = VerifyReason::kHashMismatch;
      d.detail = absl::StrCat("the file registered at this path has sha256 ", it->first.sha256);
      return d;
    }
  }
  d.file.reset();
  d.reason = VerifyReason::kUnknownHash;
  d.detail = absl::StrCat("sha256 ", request.sha256, " is not registered for ", d.source->uri);
  return d;
}

std::string ApprovedFamily(const RegistryState& state, const FileEntry& file) {
  if (!file.family.empty()) return file.family;
  auto source = state.sources.find(file.key.source_uri);
  if (source != state.sources.end() && !source->second.family.empty()) return source->second.family;
  return std::string(token::kLegacyModelFamily);
}

absl::Status ValidateFamily(std::string_view field, std::string_view family, bool required) {
  if (family.empty() && !required) return absl::OkStatus();
  if (!token::IsModelFamily(family)) {
    return absl::InvalidArgumentError(absl::StrCat(
        std::string(field), family.empty() ? ": required" : ": not a model family",
        " (the model's GGUF general.architecture: 1..64 characters of [a-z0-9._-], e.g. gpt-oss, qwen2, phi3)"));
  }
  return absl::OkStatus();
}

// ---- changes ----

std::string_view ChangeActionName(ChangeAction a) {
  switch (a) {
    case ChangeAction::kAddSource: return "add_source";
    case ChangeAction::kRevokeSource: return "revoke_source";
    case ChangeAction::kAddFile: return "add_file";
    case ChangeAction::kRevokeFile: return "revoke_file";
    case ChangeAction::kSetFamily: return "set_family";
  }
  return "unknown";
}

std::optional<ChangeAction> ChangeActionFromName(std::string_view name) {
  for (ChangeAction a : {ChangeAction::kAddSource, ChangeAction::kRevokeSource, ChangeAction::kAddFile,
                         ChangeAction::kRevokeFile, ChangeAction::kSetFamily}) {
    if (ChangeActionName(a) == name) return a;
  }
  return std::nullopt;
}

absl::Status ValidateRegistryChange(const RegistryChange& c) {
  const bool is_source = c.action == ChangeAction::kAddSource || c.action == ChangeAction::kRevokeSource;
  const char* uri_field = is_source ? "uri" : "source_uri";
  if (auto s = ParseSourceUri(c.uri); !s.ok()) return FieldError(uri_field, s.status());
  if (c.action == ChangeAction::kSetFamily) {
    // The source itself (no sha256, no path) or one of its file entries.
    if (c.sha256.empty()) {
      if (!c.path.empty()) {
        return absl::InvalidArgumentError(
            "path: must be empty without a sha256 (the change then names the source; give sha256 to name a file)");
      }
    } else {
      if (auto s = ValidateRelativePath(c.path); !s.ok()) return FieldError("path", s);
      if (auto s = ValidateSha("sha256", c.sha256); !s.ok()) return s;
    }
    return ValidateFamily("family", c.family, /*required=*/true);
  }
  if (!is_source) {
    if (auto s = ValidateRelativePath(c.path); !s.ok()) return FieldError("path", s);
    if (auto s = ValidateSha("sha256", c.sha256); !s.ok()) return s;
  }
  switch (c.action) {
    case ChangeAction::kAddSource:
      if (auto s = ValidateText(c.description, false); !s.ok()) return FieldError("description", s);
      if (auto s = ValidateFamily("family", c.family, false); !s.ok()) return s;
      break;
    case ChangeAction::kAddFile:
      if (c.size == 0) return absl::InvalidArgumentError("size_bytes: must be > 0");
      if (auto s = ValidateText(c.description, false); !s.ok()) return FieldError("description", s);
      if (auto s = ValidateFamily("family", c.family, false); !s.ok()) return s;
      break;
    case ChangeAction::kSetFamily:  // checked above
      break;
    case ChangeAction::kRevokeSource:
    case ChangeAction::kRevokeFile:
      if (auto s = ValidateText(c.reason, true); !s.ok()) return FieldError("reason", s);
      break;
  }
  return absl::OkStatus();
}

ChangeResult ApplyChange(RegistryState* state, const RegistryChange& c, std::string_view caller,
                         uint64_t time_us, uint64_t log_index) {
  ChangeResult r;
  auto fail = [&r](std::string reason, absl::Status status) {
    r.reason = std::move(reason);
    r.status = std::move(status);
    return r;
  };
  switch (c.action) {
    case ChangeAction::kAddSource: {
      auto it = state->sources.find(c.uri);
      if (it != state->sources.end()) {
        r.source = it->second;
        if (it->second.revoked) {
          return fail("revoked", absl::FailedPreconditionError(absl::StrCat(
                                     "source ", c.uri, " was revoked; revocation is permanent")));
        }
        return fail("already_exists",
                    absl::AlreadyExistsError(absl::StrCat("source ", c.uri, " is already trusted")));
      }
      SourceEntry e;
      e.uri = c.uri;
      e.description = c.description;
      e.family = c.family;
      e.added_us = time_us;
      e.added_by = std::string(caller);
      e.added_log_index = log_index;
      r.source = e;
      state->sources.Put(c.uri, std::move(e));
      break;
    }
    case ChangeAction::kRevokeSource: {
      auto it = state->sources.find(c.uri);
      if (it == state->sources.end()) {
        return fail("not_found", absl::NotFoundError(absl::StrCat("source ", c.uri, " is not registered")));
      }
      if (it->second.revoked) {
        r.source = it->second;
        return fail("already_revoked",
                    absl::FailedPreconditionError(absl::StrCat("source ", c.uri, " is already revoked")));
      }
      SourceEntry e = it->second;
      e.revoked = true;
      e.revoke_reason = c.reason;
      e.revoked_us = time_us;
      e.revoked_by = std::string(caller);
      r.source = e;
      state->sources.Put(c.uri, std::move(e));
      break;
    }
    case ChangeAction::kAddFile: {
      auto src = state->sources.find(c.uri);
      if (src == state->sources.end()) {
        return fail("not_found", absl::NotFoundError(absl::StrCat("source ", c.uri, " is not registered")));
      }
      if (src->second.revoked) {
        return fail("revoked", absl::FailedPreconditionError(
                                   absl::StrCat("source ", c.uri, " is revoked; files cannot be added")));
      }
      FileKey key{c.uri, c.path, c.sha256};
      auto it = state->files.find(key);
      if (it != state->files.end()) {
        r.file = it->second;
        if (it->second.revoked) {
          return fail("revoked", absl::FailedPreconditionError(
                                     "this file entry was revoked; revocation is permanent"));
        }
        return fail("already_exists", absl::AlreadyExistsError("this file is already registered"));
      }
      FileEntry e;
      e.key = key;
      e.size = c.size;
      e.description = c.description;
      e.family = c.family;
      e.added_us = time_us;
      e.added_by = std::string(caller);
      e.added_log_index = log_index;
      r.file = e;
      state->files.Put(std::move(key), std::move(e));
      break;
    }
    case ChangeAction::kRevokeFile: {
      auto it = state->files.find(FileKey{c.uri, c.path, c.sha256});
      if (it == state->files.end()) {
        return fail("not_found", absl::NotFoundError("no such file entry"));
      }
      if (it->second.revoked) {
        r.file = it->second;
        return fail("already_revoked", absl::FailedPreconditionError("file entry is already revoked"));
      }
      FileEntry e = it->second;
      e.revoked = true;
      e.revoke_reason = c.reason;
      e.revoked_us = time_us;
      e.revoked_by = std::string(caller);
      r.file = e;
      state->files.Put(e.key, e);
      break;
    }
    case ChangeAction::kSetFamily: {
      auto src = state->sources.find(c.uri);
      if (src == state->sources.end()) {
        return fail("not_found", absl::NotFoundError(absl::StrCat("source ", c.uri, " is not registered")));
      }
      if (c.sha256.empty()) {
        r.source = src->second;
        if (src->second.revoked) {
          return fail("revoked", absl::FailedPreconditionError(absl::StrCat("source ", c.uri, " is revoked")));
        }
        if (src->second.family == c.family) {
          return fail("already_exists", absl::AlreadyExistsError(absl::StrCat(
                                            "source ", c.uri, " is already registered for family ", c.family)));
        }
        SourceEntry e = src->second;
        e.family = c.family;
        r.source = e;
        state->sources.Put(c.uri, std::move(e));
        break;
      }
      auto it = state->files.find(FileKey{c.uri, c.path, c.sha256});
      if (it == state->files.end()) return fail("not_found", absl::NotFoundError("no such file entry"));
      r.file = it->second;
      if (it->second.revoked || src->second.revoked) {
        return fail("revoked", absl::FailedPreconditionError(it->second.revoked
                                                                 ? "file entry is revoked"
                                                                 : absl::StrCat("source ", c.uri, " is revoked")));
      }
      if (it->second.family == c.family) {
        return fail("already_exists",
                    absl::AlreadyExistsError(absl::StrCat("file entry is already registered for family ", c.family)));
      }
      FileEntry e = it->second;
      e.family = c.family;
      r.file = e;
      FileKey key = e.key;  // not e.key: the entry is moved into the map
      state->files.Put(std::move(key), std::move(e));
      break;
    }
  }
  ++state->policy_version;
  r.reason = "applied";
  r.status = absl::OkStatus();
  return r;
}

}  // namespace ossgate::provenance
