// Shared fixtures for the provenance integration, crash and interop tests:
// temp dirs, a dev PKI made by tools/certs/make_dev_pki.sh, signing keys,
// and mTLS channels per role.
#ifndef OSSGATE_TESTS_PROVENANCE_TEST_ENV_H_
#define OSSGATE_TESTS_PROVENANCE_TEST_ENV_H_

#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "provenance_service/client/client.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::provenance::testing {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/provenance_test_XXXXXX";
    path_ = mkdtemp(tmpl) ? tmpl : "";
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs a shell command; returns its exit status and stdout.
inline int RunCommand(const std::string& cmd, std::string* out = nullptr) {
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string text;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) text.append(buf, n);
  int status = pclose(p);
  if (out) *out = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Generates ca/server/<role>-<id> certificates under dir with the project's
// script (the same one deployments use for development PKIs).
inline void MakePki(const std::string& dir, const std::vector<std::string>& roles) {
  std::string out;
  int rc = RunCommand(absl::StrCat("bash ", OSSGATE_SOURCE_DIR, "/tools/certs/make_dev_pki.sh ", dir, " ",
                                   absl::StrJoin(roles, " "), " 2>&1"),
                      &out);
  ASSERT_EQ(rc, 0) << out;
}

// Writes a fresh Ed25519 key as PKCS#8 PEM (mode 0600); returns the key.
inline token::Ed25519PrivateKey WriteKey(const std::string& path) {
  auto key = token::Ed25519PrivateKey::Generate();
  EXPECT_TRUE(key.ok());
  EXPECT_TRUE(token::WriteFileAtomically(path, key->ToPem(), 0600).ok());
  return *std::move(key);
}

inline ClientOptions RoleClient(const std::string& pki, int port, const std::string& cert_name) {
  ClientOptions o;
  o.server = absl::StrCat("127.0.0.1:", port);
  o.ca_file = pki + "/ca.pem";
  o.cert_file = pki + "/" + cert_name + ".pem";
  o.key_file = pki + "/" + cert_name + ".key";
  o.timeout = absl::Seconds(10);
  return o;
}

}  // namespace ossgate::provenance::testing

#endif  // OSSGATE_TESTS_PROVENANCE_TEST_ENV_H_
