// ApiClient over HTTPS against the API's own server (net::Server), with
// certificates from `icos tls init`: a trusted server is served; every way
// of getting TLS wrong is refused with a message that names the problem and
// the fix, at once (no retries: another try sees the same certificate).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "cli/tls_files.h"
#include "net/server.h"
#include "protocol/http_client.h"

namespace icos::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<net::Server> Serve(const std::string& cert, const std::string& key) {
  net::Router router;
  router.Get("/ping", [](const net::Request& req, net::Response& res) {
    res.Set(absl::StrCat("{\"auth\":\"", req.headers.count("Authorization") ? "yes" : "no", "\"}"), "application/json");
  });
  net::ServerOptions o;
  o.tls_cert_file = cert;
  o.tls_key_file = key;
  auto server = std::make_unique<net::Server>(std::move(router), o);
  EXPECT_TRUE(server->Start().ok());
  return server;
}

// Not TLS, but the same client against the same server: what a user who
// mistypes --server sees.
TEST(ApiClientTest, ATrailingSlashNamesTheSameServerAndAForeignPageIsNamedNotDumped) {
  net::Router router;
  router.Get("/api/v1/ping", [](const net::Request&, net::Response& res) { res.Set("{}", "application/json"); });
  router.Get("/api/v1/denied", [](const net::Request&, net::Response& res) {
    res.status = 403;
    res.Set(R"({"error":"a user token may not do that"})", "application/json");
  });
  router.Get("/api/v1/html", [](const net::Request&, net::Response& res) {
    res.status = 404;
    res.Set("<!DOCTYPE HTML>\n<html><body>Error response</body></html>\n", "text/html");
  });
  net::Server server(std::move(router), net::ServerOptions{});
  ASSERT_TRUE(server.Start().ok());
  const std::string url = absl::StrCat("http://127.0.0.1:", server.port());
  ApiClient slash(url + "//", "t", ApiClientOptions{.timeout_ms = 5'000});
  EXPECT_EQ(slash.base_url(), url);
  EXPECT_TRUE(slash.Json("GET", "/api/v1/ping").ok());
  absl::StatusOr<nlohmann::json> denied = slash.Json("GET", "/api/v1/denied");
  EXPECT_EQ(denied.status(), absl::PermissionDeniedError("a user token may not do that"));
  absl::StatusOr<nlohmann::json> html = slash.Json("GET", "/api/v1/html");
  EXPECT_EQ(html.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(
      std::string(html.status().message()),
      AllOf(HasSubstr(url + " answered HTTP 404 with a reply that is not the icos API's (text/html"),
            HasSubstr("\"<!DOCTYPE HTML>\""), HasSubstr("is this the icos server's URL?"), Not(HasSubstr("<body>"))));
  server.Stop();
}

class ApiClientTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() / absl::StrCat("icos-api-tls-", getpid())).string();
    fs::remove_all(dir_);
    for (const char* name : {"a", "b"}) {
      ASSERT_TRUE(InitTlsFiles({.dir = Path(name), .hosts = {"localhost", "127.0.0.1"}}).ok());
    }
    ASSERT_TRUE(InitTlsFiles({.dir = Path("named"), .hosts = {"other.example"}}).ok());
    tls_ = Serve(Path("a/server.crt"), Path("a/server.key"));
    plain_ = Serve("", "");
  }
  void TearDown() override {
    tls_->Stop();
    plain_->Stop();
    fs::remove_all(dir_);
  }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  std::string Https(const net::Server& s) const { return absl::StrCat("https://127.0.0.1:", s.port()); }
  static absl::StatusOr<nlohmann::json> Ping(const std::string& url, const std::string& ca) {
    ApiClient client(url, "secret", ApiClientOptions{.timeout_ms = 5'000, .ca_cert_file = ca});
    return client.Json("GET", "/ping");
  }

  std::string dir_;
  std::unique_ptr<net::Server> tls_, plain_;
};

TEST_F(ApiClientTlsTest, ServerSignedByTheGivenCaIsServed) {
  absl::StatusOr<nlohmann::json> r = Ping(Https(*tls_), Path("a/ca.crt"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)["auth"], "yes");
  // By name too: the certificate names localhost.
  r = Ping(absl::StrCat("https://localhost:", tls_->port()), Path("a/ca.crt"));
  EXPECT_TRUE(r.ok()) << r.status();
}

TEST_F(ApiClientTlsTest, AnotherCaIsRefusedAtOnceNamingTheCertificate) {
  ApiClient client(Https(*tls_), "secret", ApiClientOptions{.timeout_ms = 5'000, .ca_cert_file = Path("b/ca.crt")});
  client.set_retry(20'000);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<nlohmann::json> r = client.Json("GET", "/ping");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));  // not retried
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("is not trusted"));
  EXPECT_THAT(r.status().message(), HasSubstr("CN=localhost"));
  EXPECT_THAT(r.status().message(), HasSubstr("issued by CN=icos CA"));
  EXPECT_THAT(r.status().message(), HasSubstr("only the CA in " + Path("b/ca.crt")));
  EXPECT_THAT(r.status().message(), HasSubstr("--ca-cert"));
}

TEST_F(ApiClientTlsTest, WithoutACaTheSystemsCasAreAskedAndRefuse) {
  absl::StatusOr<nlohmann::json> r = Ping(Https(*tls_), "");
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("the system's CA certificates (no --ca-cert given)"));
}

TEST_F(ApiClientTlsTest, CertificateForAnotherNameIsRefused) {
  auto named = Serve(Path("named/server.crt"), Path("named/server.key"));
  absl::StatusOr<nlohmann::json> r = Ping(Https(*named), Path("named/ca.crt"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("is for DNS:other.example, not for '127.0.0.1'"));
  EXPECT_THAT(r.status().message(), HasSubstr("icos tls init --host 127.0.0.1"));
  named->Stop();
}

TEST_F(ApiClientTlsTest, ExpiredCertificateSaysRenew) {
  // Valid until a day ago (and from an hour ago: OpenSSL reports the expiry).
  ASSERT_TRUE(InitTlsFiles({.dir = Path("expired"), .hosts = {"127.0.0.1"}, .server_days = -1}).ok());
  auto expired = Serve(Path("expired/server.crt"), Path("expired/server.key"));
  absl::StatusOr<nlohmann::json> r = Ping(Https(*expired), Path("expired/ca.crt"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("is not valid now: certificate has expired"));
  EXPECT_THAT(r.status().message(), HasSubstr("renew it on the server"));
  expired->Stop();
}

TEST_F(ApiClientTlsTest, PlainHttpToTheTlsPortIsToldToUseHttps) {
  absl::StatusOr<nlohmann::json> r = Ping(absl::StrCat("http://127.0.0.1:", tls_->port()), "");
  ASSERT_TRUE(absl::IsInvalidArgument(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("speaks HTTPS only"));
  EXPECT_THAT(r.status().message(), HasSubstr("https://"));
}

TEST_F(ApiClientTlsTest, HttpsToAPlainServerSaysItSpeaksPlainHttp) {
  absl::StatusOr<nlohmann::json> r = Ping(Https(*plain_), Path("a/ca.crt"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("does not speak TLS: the server there answers plain HTTP"));
  EXPECT_THAT(r.status().message(), HasSubstr("--tls-cert"));
}

TEST_F(ApiClientTlsTest, UnusableCaFilesAreNamed) {
  absl::StatusOr<nlohmann::json> r = Ping(Https(*tls_), Path("missing.crt"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("CA certificate file " + Path("missing.crt") + " does not exist"));
  r = Ping(Https(*tls_), Path("a/ca.key"));  // a key, not a certificate
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("cannot use CA certificate file " + Path("a/ca.key")));
}

// A leader that cannot be trusted is not silently skipped for a standby:
// the list stops there with the reason.
TEST_F(ApiClientTlsTest, AnUntrustedControllerStopsFailover) {
  absl::StatusOr<nlohmann::json> r = Ping(absl::StrCat(Https(*tls_), ",", Https(*tls_)), Path("b/ca.crt"));
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_THAT(r.status().message(), HasSubstr("is not trusted"));
}

}  // namespace
}  // namespace icos::cli
