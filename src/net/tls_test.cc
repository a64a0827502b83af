// TLS on a listener: the test makes its own CA and server certificate with
// the OpenSSL API (no files checked in, nothing that expires in the repo).
#include <gtest/gtest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "net/server.h"
#include "net/test_util.h"

namespace icos::net {
namespace {

using namespace ::icos::net::testing;

struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertFree {
  void operator()(X509* c) const { X509_free(c); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

Key NewKey() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `key` named `cn`, signed by issuer (self-signed when null).
Cert MakeCert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 86'400);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (ca) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "CA:FALSE");
    AddExtension(cert.get(), signer, NID_subject_alt_name, "IP:127.0.0.1,DNS:localhost");
    AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth");
  }
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

void WriteCert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_X509(f, cert);
  std::fclose(f);
}

void WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("icos-tls-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    Key ca_key = NewKey(), other_ca_key = NewKey(), server_key = NewKey();
    Cert ca = MakeCert(ca_key.get(), "icos test CA", nullptr, nullptr, true);
    Cert other_ca = MakeCert(other_ca_key.get(), "some other CA", nullptr, nullptr, true);
    Cert server = MakeCert(server_key.get(), "localhost", ca.get(), ca_key.get(), false);
    WriteCert(Path("ca.pem"), ca.get());
    WriteCert(Path("other-ca.pem"), other_ca.get());
    WriteCert(Path("server.pem"), server.get());
    WriteKey(Path("server.key"), server_key.get());

    Router router;
    router.Get("/hello", [](const Request& req, Response& res) { res.Set("hello " + req.peer, "text/plain"); });
    ServerOptions o;
    o.port = 0;
    o.tls_cert_file = Path("server.pem");
    o.tls_key_file = Path("server.key");
    o.limits.header_timeout_ms = 500;
    server_ = std::make_unique<Server>(std::move(router), o);
    ASSERT_TRUE(server_->Start().ok());
  }
  void TearDown() override {
    server_->Stop();
    std::filesystem::remove_all(dir_);
  }
  std::string Path(const char* name) const { return (dir_ / name).string(); }

  std::filesystem::path dir_;
  std::unique_ptr<Server> server_;
};

TEST_F(TlsTest, ClientTrustingTheCaIsServed) {
  httplib::SSLClient client("127.0.0.1", server_->port());
  client.set_ca_cert_path(Path("ca.pem").c_str());
  client.enable_server_certificate_verification(true);
  auto r = client.Get("/hello");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello 127.0.0.1");
  // Keep-alive over TLS: a second request on the same connection.
  r = client.Get("/hello");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(TlsTest, ClientWithTheWrongCaRefusesTheServer) {
  httplib::SSLClient client("127.0.0.1", server_->port());
  client.set_ca_cert_path(Path("other-ca.pem").c_str());
  client.enable_server_certificate_verification(true);
  auto r = client.Get("/hello");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), httplib::Error::SSLServerVerification);
  // The server is unharmed.
  httplib::SSLClient good("127.0.0.1", server_->port());
  good.set_ca_cert_path(Path("ca.pem").c_str());
  good.enable_server_certificate_verification(true);
  ASSERT_TRUE(good.Get("/hello"));
}

// Plain HTTP to the TLS port gets nothing served, only a plain-text 400
// saying to use https://, and a client that never finishes its handshake
// is cut off at the header deadline.
TEST_F(TlsTest, PlainTextAndStalledHandshakesAreClosed) {
  const int plain = Connect(server_->port());
  ASSERT_TRUE(SendAll(plain, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string refusal = ReadResponse(plain, 2'000);
  EXPECT_EQ(StatusOf(refusal), 400) << refusal;
  EXPECT_NE(BodyOf(refusal).find("speaks HTTPS only"), std::string::npos) << refusal;
  EXPECT_EQ(refusal.find("hello"), std::string::npos);
  EXPECT_TRUE(ClosedWithin(plain, 2'000));
  ::close(plain);
  const int stalled = Connect(server_->port());
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(ClosedWithin(stalled, 3'000));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 2.5);
  ::close(stalled);
  for (int i = 0; i < 200 && server_->Stats().header_timeouts == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // counted just after the close
  }
  EXPECT_EQ(server_->Stats().header_timeouts, 1u);
}

// A plain HTTP client gets the refusal as an ordinary response, body and
// all, even when it sends a body the server never reads.
TEST_F(TlsTest, PlainHttpClientIsToldToUseHttps) {
  httplib::Client client("127.0.0.1", server_->port());
  auto r = client.Post("/hello", std::string(100'000, 'x'), "text/plain");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 400);
  EXPECT_NE(r->body.find("use an https:// URL"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace icos::net
