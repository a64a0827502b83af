// `icos tls init`'s files, loaded back with OpenSSL and checked the way a
// TLS client checks them: chain to the CA, names, key, constraints.
#include "cli/tls_files.h"

#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

namespace icos::cli {
namespace {

namespace fs = std::filesystem;

struct X509Free {
  void operator()(X509* c) const { X509_free(c); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Cert = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

Cert ReadCert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  Cert c(PEM_read_X509(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return c;
}

Key ReadKey(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return nullptr;
  Key k(PEM_read_PrivateKey(f, nullptr, nullptr, nullptr));
  std::fclose(f);
  return k;
}

std::string Slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// X509_verify_cert of `leaf` against a store holding only `ca`, for a TLS
// server named `host` (a DNS name or an IP). The X509_V_* result.
int Verify(X509* ca, X509* leaf, const std::string& host) {
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  if (X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str()) != 1) {
    ERR_clear_error();
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
  }
  const int ok = X509_verify_cert(ctx);
  const int result = ok == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  return result;
}

int Mode(const std::string& path) {
  struct stat st = {};
  stat(path.c_str(), &st);
  return st.st_mode & 0777;
}

double DaysValid(X509* cert) {
  int days = 0, secs = 0;
  ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(cert), X509_get0_notAfter(cert));
  return days + secs / 86'400.0;
}

class TlsFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / ("icos-tls-files-" + std::to_string(getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    // The CLI runs with umask 077 (cli/main.cc): certificates must still come out 0644.
    old_umask_ = umask(077);
  }
  void TearDown() override {
    umask(old_umask_);
    fs::remove_all(dir_);
  }
  TlsInitOptions Options(std::vector<std::string> hosts = {"ctl.example.com", "localhost", "10.0.0.10", "::1"}) {
    TlsInitOptions o;
    o.dir = dir_ + "/tls";
    o.hosts = std::move(hosts);
    return o;
  }

  std::string dir_;
  mode_t old_umask_ = 0;
};

TEST_F(TlsFilesTest, ServerCertificateVerifiesAgainstItsCaForEveryHost) {
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(Options());
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(made->made_ca);
  Cert ca = ReadCert(made->ca_cert), server = ReadCert(made->server_cert);
  ASSERT_TRUE(ca && server);
  for (const char* host : {"ctl.example.com", "localhost", "10.0.0.10", "::1"}) {
    EXPECT_EQ(Verify(ca.get(), server.get(), host), X509_V_OK) << host;
  }
  // Names it was not made for are refused, as a TLS client would.
  EXPECT_EQ(Verify(ca.get(), server.get(), "other.example.com"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(Verify(ca.get(), server.get(), "10.0.0.11"), X509_V_ERR_IP_ADDRESS_MISMATCH);
  // IP literals are IP entries, not DNS names (clients match IPs only against those).
  EXPECT_EQ(X509_check_ip_asc(server.get(), "10.0.0.10", 0), 1);
  EXPECT_EQ(X509_check_host(server.get(), "10.0.0.10", 0, 0, nullptr), 0);
}

TEST_F(TlsFilesTest, KeysMatchTheirCertificates) {
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(Options());
  ASSERT_TRUE(made.ok()) << made.status();
  Cert ca = ReadCert(made->ca_cert), server = ReadCert(made->server_cert);
  Key ca_key = ReadKey(made->ca_key), server_key = ReadKey(made->server_key);
  ASSERT_TRUE(ca && server && ca_key && server_key);
  EXPECT_EQ(X509_check_private_key(ca.get(), ca_key.get()), 1);
  EXPECT_EQ(X509_check_private_key(server.get(), server_key.get()), 1);
  EXPECT_EQ(X509_check_private_key(server.get(), ca_key.get()), 0);
  ERR_clear_error();
  // EC P-256.
  EXPECT_EQ(EVP_PKEY_get_base_id(server_key.get()), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(server_key.get()), 256);
  absl::StatusOr<ServerCertificateInfo> info = CheckServerCertificate(made->server_cert, made->server_key);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->names, (std::vector<std::string>{"DNS:ctl.example.com", "DNS:localhost", "IP:10.0.0.10", "IP:::1"}));
}

TEST_F(TlsFilesTest, ConstraintsValidityAndModes) {
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(Options());
  ASSERT_TRUE(made.ok()) << made.status();
  Cert ca = ReadCert(made->ca_cert), server = ReadCert(made->server_cert);
  ASSERT_TRUE(ca && server);
  EXPECT_EQ(X509_check_ca(ca.get()), 1);  // basicConstraints CA:TRUE
  EXPECT_EQ(X509_check_ca(server.get()), 0);
  EXPECT_TRUE(X509_get_extension_flags(server.get()) & EXFLAG_BCONS);  // CA:FALSE, present
  EXPECT_TRUE(X509_get_extended_key_usage(server.get()) & XKU_SSL_SERVER);
  // 3,650 and 730 days from an hour before issue.
  EXPECT_NEAR(DaysValid(ca.get()), 3'650 + 1 / 24.0, 0.01);
  EXPECT_NEAR(DaysValid(server.get()), 730 + 1 / 24.0, 0.01);
  EXPECT_LE(X509_cmp_current_time(X509_get0_notBefore(server.get())), 0);
  EXPECT_EQ(Mode(made->ca_key), 0600);
  EXPECT_EQ(Mode(made->server_key), 0600);
  EXPECT_EQ(Mode(made->ca_cert), 0644);
  EXPECT_EQ(Mode(made->server_cert), 0644);
  EXPECT_EQ(Mode(dir_ + "/tls"), 0755);  // made here: a service user must reach the certificate
  // Random serials: two CAs never share one.
  TlsInitOptions other = Options();
  other.dir = dir_ + "/other";
  absl::StatusOr<TlsFilePaths> second = InitTlsFiles(other);
  ASSERT_TRUE(second.ok()) << second.status();
  Cert ca2 = ReadCert(second->ca_cert);
  EXPECT_NE(ASN1_INTEGER_cmp(X509_get0_serialNumber(ca.get()), X509_get0_serialNumber(ca2.get())), 0);
  // And one CA does not vouch for the other's server.
  Cert server2 = ReadCert(second->server_cert);
  EXPECT_NE(Verify(ca.get(), server2.get(), "localhost"), X509_V_OK);
}

TEST_F(TlsFilesTest, RefusesToOverwriteAServerCertificate) {
  ASSERT_TRUE(InitTlsFiles(Options()).ok());
  const std::string before = Slurp(dir_ + "/tls/server.crt");
  absl::StatusOr<TlsFilePaths> again = InitTlsFiles(Options());
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(again.status()));
  EXPECT_NE(again.status().message().find(dir_ + "/tls/server.crt already exists"), std::string::npos)
      << again.status();
  EXPECT_EQ(Slurp(dir_ + "/tls/server.crt"), before);
  // server.key alone is enough to refuse.
  fs::remove(dir_ + "/tls/server.crt");
  again = InitTlsFiles(Options());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("server.key already exists"), std::string::npos) << again.status();
}

TEST_F(TlsFilesTest, AnExistingCaSignsANewServerCertificate) {
  absl::StatusOr<TlsFilePaths> first = InitTlsFiles(Options());
  ASSERT_TRUE(first.ok()) << first.status();
  const std::string ca_before = Slurp(first->ca_cert), key_before = Slurp(first->ca_key);
  fs::remove(first->server_cert);
  fs::remove(first->server_key);
  absl::StatusOr<TlsFilePaths> renewed = InitTlsFiles(Options({"new.example.com"}));
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_FALSE(renewed->made_ca);
  EXPECT_EQ(Slurp(renewed->ca_cert), ca_before);
  EXPECT_EQ(Slurp(renewed->ca_key), key_before);
  Cert ca = ReadCert(renewed->ca_cert), server = ReadCert(renewed->server_cert);
  EXPECT_EQ(Verify(ca.get(), server.get(), "new.example.com"), X509_V_OK);
  EXPECT_EQ(Verify(ca.get(), server.get(), "ctl.example.com"), X509_V_ERR_HOSTNAME_MISMATCH);
}

TEST_F(TlsFilesTest, HalfACaIsRefused) {
  absl::StatusOr<TlsFilePaths> first = InitTlsFiles(Options());
  ASSERT_TRUE(first.ok());
  fs::remove(first->server_cert);
  fs::remove(first->server_key);
  fs::remove(first->ca_key);
  absl::StatusOr<TlsFilePaths> again = InitTlsFiles(Options());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("ca.key does not"), std::string::npos) << again.status();
}

TEST_F(TlsFilesTest, BadHostsAreRefused) {
  for (const char* bad : {"", "under_score.example", "-lead.example", "a..b", "http://x", "10.0.0.1:7070"}) {
    absl::StatusOr<TlsFilePaths> made = InitTlsFiles(Options({bad}));
    EXPECT_TRUE(absl::IsInvalidArgument(made.status())) << bad << ": " << made.status();
  }
  EXPECT_TRUE(absl::IsInvalidArgument(InitTlsFiles(Options({})).status()));
  EXPECT_FALSE(fs::exists(dir_ + "/tls/ca.crt"));  // nothing written
}

TEST_F(TlsFilesTest, CheckServerCertificateNamesAMismatchedKey) {
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(Options());
  ASSERT_TRUE(made.ok());
  absl::StatusOr<ServerCertificateInfo> info = CheckServerCertificate(made->server_cert, made->ca_key);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("is not the private key of " + made->server_cert), std::string::npos)
      << info.status();
  info = CheckServerCertificate(made->server_cert, dir_ + "/missing.key");
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("missing.key does not exist"), std::string::npos) << info.status();
  info = CheckServerCertificate(made->server_key, made->server_key);
  ASSERT_FALSE(info.ok());
  EXPECT_NE(info.status().message().find("holds no PEM certificate"), std::string::npos) << info.status();
}

TEST(CertificateCoversTest, MatchesNamesAddressesAndOneWildcardLabel) {
  const std::vector<std::string> names = {"DNS:ctl.example.com", "DNS:*.nodes.example.com", "IP:10.0.0.10", "IP:::1"};
  EXPECT_TRUE(CertificateCovers(names, "ctl.example.com"));
  EXPECT_TRUE(CertificateCovers(names, "CTL.Example.com"));
  EXPECT_TRUE(CertificateCovers(names, "a.nodes.example.com"));
  EXPECT_FALSE(CertificateCovers(names, "a.b.nodes.example.com"));
  EXPECT_FALSE(CertificateCovers(names, "nodes.example.com"));
  EXPECT_TRUE(CertificateCovers(names, "10.0.0.10"));
  EXPECT_TRUE(CertificateCovers(names, "[::1]"));
  EXPECT_TRUE(CertificateCovers(names, "0:0::1"));
  EXPECT_FALSE(CertificateCovers(names, "10.0.0.11"));
  EXPECT_FALSE(CertificateCovers(names, "localhost"));
}

}  // namespace
}  // namespace icos::cli
