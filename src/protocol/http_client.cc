#include "protocol/http_client.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace icos {

// What the server showed in the last TLS handshake, recorded by the verify
// callback below: httplib says only that verification failed, and a useful
// message names the certificate and what is wrong with it.
struct TlsPeerInfo {
  bool seen = false;
  std::string subject, issuer;     // of the server's own certificate (RFC 2253)
  std::vector<std::string> names;  // its subjectAltName entries: DNS:..., IP:...
};

namespace {

std::string NameText(const X509_NAME* name) {
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string out(data, static_cast<size_t>(n));
  BIO_free(bio);
  return out;
}

std::vector<std::string> AltNames(X509* cert) {
  std::vector<std::string> out;
  auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names, i);
    if (gen->type == GEN_DNS) {
      const ASN1_STRING* s = gen->d.dNSName;
      out.push_back(absl::StrCat(
          "DNS:", std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s))));
    } else if (gen->type == GEN_IPADD) {
      const int len = ASN1_STRING_length(gen->d.iPAddress);
      char text[INET6_ADDRSTRLEN] = {};
      if (len == 4 || len == 16) {
        inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(gen->d.iPAddress), text, sizeof(text));
      }
      out.push_back(absl::StrCat("IP:", text));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// The SSL_CTX slot that points at the ApiClient's PeerCertificate.
int PeerIndex() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// OpenSSL's verify callback: records the server's certificate and leaves
// the verdict (`ok`) alone; httplib checks the result after the handshake.
int RecordPeer(int ok, X509_STORE_CTX* store) {
  auto* ssl = static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return ok;
  auto* peer = static_cast<TlsPeerInfo*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), PeerIndex()));
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  if (peer != nullptr && leaf != nullptr) {
    peer->seen = true;
    peer->subject = NameText(X509_get_subject_name(leaf));
    peer->issuer = NameText(X509_get_issuer_name(leaf));
    peer->names = AltNames(leaf);
  }
  return ok;
}

// "host" of "https://host:port/...", brackets of an IPv6 literal removed.
std::string HostOf(const std::string& url) {
  std::string rest = url;
  if (size_t scheme = rest.find("://"); scheme != std::string::npos) rest = rest.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  if (!rest.empty() && rest.front() == '[') return rest.substr(1, rest.find(']') - 1);
  return rest.substr(0, rest.find(':'));
}

// Checks a CA file before the first request, so a bad one is reported as
// such rather than as an untrusted server.
absl::Status CheckCaFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("CA certificate file ", path,
                                                      " does not exist (--ca-cert, ICOS_CA_CERT or config.json's "
                                                      "ca_cert: the ca.crt of `icos tls init` or of `icos up --tls`)"));
  }
  X509_STORE* store = X509_STORE_new();
  const int loaded = X509_STORE_load_file(store, path.c_str());
  X509_STORE_free(store);
  if (loaded != 1) {
    const unsigned long code = ERR_get_error();
    ERR_clear_error();
    char why[256] = "no certificate in it";
    if (code != 0) ERR_error_string_n(code, why, sizeof(why));
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use CA certificate file ", path, ": ", why,
                     " (it should hold PEM certificates: -----BEGIN CERTIFICATE-----)"));
  }
  return absl::OkStatus();
}

bool IsTlsError(httplib::Error e) {
  return e == httplib::Error::SSLConnection || e == httplib::Error::SSLLoadingCerts ||
         e == httplib::Error::SSLServerVerification;
}

}  // namespace

ApiClient::ApiClient(const std::string& base_url, std::string token, ApiClientOptions options)
    : token_(std::move(token)), options_(std::move(options)), peer_(std::make_unique<TlsPeerInfo>()) {
  for (absl::string_view url : absl::StrSplit(base_url, ',', absl::SkipWhitespace())) {
    url = absl::StripAsciiWhitespace(url);
    // "http://host:7070/" names the same server; the API's paths begin with '/'.
    while (absl::EndsWith(url, "/") && !absl::EndsWith(url, "://")) url.remove_suffix(1);
    urls_.emplace_back(url);
  }
  if (urls_.empty()) urls_.push_back(base_url);  // httplib reports the bad URL at the first request
  if (!options_.ca_cert_file.empty()) ca_error_ = CheckCaFile(options_.ca_cert_file);
  Connect(0);
}

ApiClient::~ApiClient() = default;

void ApiClient::Connect(size_t index) {
  current_ = index;
  client_ = std::make_unique<httplib::Client>(urls_[index]);
  client_->set_connection_timeout(std::chrono::milliseconds(std::min<int64_t>(options_.timeout_ms, 5'000)));
  client_->set_read_timeout(std::chrono::milliseconds(options_.timeout_ms));
  client_->set_write_timeout(std::chrono::milliseconds(options_.timeout_ms));
  client_->set_keep_alive(options_.keep_alive);
  client_->set_tcp_nodelay(true);
  if (SSL_CTX* ctx = client_->ssl_context(); ctx != nullptr) {
    // Always verified: a token sent to a server nobody vouched for is a token given away.
    client_->enable_server_certificate_verification(true);
    if (!options_.ca_cert_file.empty()) client_->set_ca_cert_path(options_.ca_cert_file);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    *peer_ = TlsPeerInfo();
    SSL_CTX_set_ex_data(ctx, PeerIndex(), peer_.get());
    // VERIFY_NONE as httplib sets it: it reads the verdict after the handshake.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, RecordPeer);
  }
}

absl::Status ApiClient::Explain(int error_code, bool* tls_config_error) {
  const auto error = static_cast<httplib::Error>(error_code);
  const std::string& url = urls_[current_];
  *tls_config_error = false;
  if (!IsTlsError(error)) return absl::UnavailableError(absl::StrCat(url, ": ", httplib::to_string(error)));
  const std::string trusted = options_.ca_cert_file.empty()
                                  ? std::string("the system's CA certificates (no --ca-cert given)")
                                  : absl::StrCat("only the CA in ", options_.ca_cert_file);
  if (error == httplib::Error::SSLLoadingCerts) {
    *tls_config_error = true;
    return absl::FailedPreconditionError(
        absl::StrCat("cannot load the CA certificates to check ", url, " with: ", trusted));
  }
  if (error == httplib::Error::SSLServerVerification) {
    *tls_config_error = true;
    const long result = client_->get_openssl_verify_result();
    const std::string what =
        peer_->seen ? absl::StrCat("the certificate of ", url, " (", peer_->subject, ", issued by ", peer_->issuer, ")")
                    : absl::StrCat("the certificate of ", url);
    if (result == X509_V_ERR_CERT_HAS_EXPIRED || result == X509_V_ERR_CERT_NOT_YET_VALID) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " is not valid now: ", X509_verify_cert_error_string(result),
                       "; renew it on the server (docs/deploy.md, \"TLS\"), or check this machine's clock"));
    }
    if (result != X509_V_OK) {
      return absl::FailedPreconditionError(absl::StrCat(
          what, " is not trusted: ", X509_verify_cert_error_string(result), ". This client trusts ", trusted,
          "; give it the CA that signed the server's certificate with --ca-cert FILE or ICOS_CA_CERT (an icos "
          "cluster's own CA is the ca.crt that `icos tls init` made, or <data dir>/tls/ca.crt of `icos up --tls`)"));
    }
    // A trusted chain but not for this name: httplib's host check failed.
    const std::string host = HostOf(url);
    return absl::FailedPreconditionError(absl::StrCat(
        what, " is for ", peer_->names.empty() ? std::string("no names at all") : absl::StrJoin(peer_->names, ", "),
        ", not for '", host, "': reach the server by one of those names, or give it a certificate that names ", host,
        " (icos tls init --host ", host, ",...)"));
  }
  // The handshake broke off. The usual reason is a server that speaks plain
  // HTTP: ask it (no token in this request), so the message can say so.
  const size_t scheme_end = url.find("://");
  httplib::Client plain(absl::StrCat("http://", scheme_end == std::string::npos ? url : url.substr(scheme_end + 3)));
  plain.set_connection_timeout(std::chrono::seconds(2));
  plain.set_read_timeout(std::chrono::seconds(2));
  if (httplib::Result probe = plain.Get("/"); probe) {
    *tls_config_error = true;
    return absl::FailedPreconditionError(
        absl::StrCat(url,
                     " does not speak TLS: the server there answers plain HTTP. Start it with --tls-cert and --tls-key "
                     "(docs/deploy.md, \"TLS\"), or use http:// (then tokens cross the network in clear text)"));
  }
  return absl::UnavailableError(absl::StrCat(url, ": the TLS handshake failed (", httplib::to_string(error), ")"));
}

absl::StatusOr<HttpReply> ApiClient::Request(const std::string& method, const std::string& path,
                                             const std::string& body, const std::string& content_type,
                                             const std::map<std::string, std::string>& extra) {
  if (!ca_error_.ok()) return ca_error_;
  if (method != "GET" && method != "POST" && method != "PUT" && method != "PATCH" && method != "DELETE") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported method ", method));
  }
  httplib::Headers headers(extra.begin(), extra.end());
  if (!token_.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", token_));
  // Sending it twice does no harm: the server answers a repeat with the first result.
  const bool repeatable = method == "GET" || extra.count("Idempotency-Key") > 0;
  // With a cap on the reply, the body is read through a receiver that
  // stops at the cap (httplib's own reading keeps all of it).
  std::string capped_body;
  bool too_big = false;
  auto send = [&]() -> httplib::Result {
    if (options_.max_reply_bytes > 0) {
      httplib::Request req;
      req.method = method;
      req.path = path;
      req.headers = headers;
      if (method != "GET" && method != "DELETE") {
        req.body = body;
        req.set_header("Content-Type", content_type);
      }
      capped_body.clear();
      too_big = false;
      const size_t cap = static_cast<size_t>(options_.max_reply_bytes);
      req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
        if (capped_body.size() + n > cap) {
          too_big = true;
          return false;
        }
        capped_body.append(data, n);
        return true;
      };
      return client_->send(req);
    }
    if (method == "GET") return client_->Get(path.c_str(), headers);
    if (method == "POST") return client_->Post(path.c_str(), headers, body, content_type.c_str());
    if (method == "PUT") return client_->Put(path.c_str(), headers, body, content_type.c_str());
    if (method == "PATCH") return client_->Patch(path.c_str(), headers, body, content_type.c_str());
    return client_->Delete(path.c_str(), headers);
  };
  // One pass over the controllers, starting at the one in use.
  auto attempt = [&]() -> absl::StatusOr<HttpReply> {
    httplib::Result r = send();
    if (too_big) {
      return absl::ResourceExhaustedError(
          absl::StrCat(base_url(), " answered with more than ", options_.max_reply_bytes, " bytes; not read"));
    }
    std::vector<std::string> failures;
    for (size_t tried = 1;; ++tried) {
      if (r) break;
      bool tls_config_error = false;
      absl::Status why = Explain(static_cast<int>(r.error()), &tls_config_error);
      // Another controller (or try) would show the same certificate.
      if (tls_config_error) return why;
      failures.emplace_back(why.message());
      // A connect that timed out never connected either: on a real network a
      // controller whose machine is gone does not refuse, it never answers.
      // A failed TLS handshake comes before the request is sent.
      const bool never_sent = r.error() == httplib::Error::Connection ||
                              r.error() == httplib::Error::ConnectionTimeout ||
                              r.error() == httplib::Error::SSLConnection;
      if (tried >= urls_.size() || (!repeatable && !never_sent)) break;
      Connect((current_ + 1) % urls_.size());
      r = send();
    }
    if (!r) {
      return absl::UnavailableError(
          absl::StrCat("cannot reach ", absl::StrJoin(failures, "; "), options_.unreachable_hint));
    }
    HttpReply out;
    out.status = r->status;
    out.body = options_.max_reply_bytes > 0 ? std::move(capped_body) : r->body;
    for (const auto& [k, v] : r->headers) out.headers[k] = v;
    return out;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(retry_ms_);
  int64_t backoff_ms = 100;
  while (true) {
    absl::StatusOr<HttpReply> reply = attempt();
    const bool transient = reply.ok() ? reply->status == 503 : absl::IsUnavailable(reply.status());
    if (!transient || !repeatable || retry_ms_ <= 0 ||
        std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms) > deadline) {
      return reply;
    }
    if (on_retry_)
      on_retry_(reply.ok() ? absl::UnavailableError(absl::StrCat(base_url(), " answered 503")) : reply.status());
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 2'000);
    Connect(current_);  // a fresh connection: the old one may be half-dead
  }
}

std::string NewIdempotencyKey() {
  std::random_device entropy;  // the kernel's random source
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 4; ++i) {
    uint32_t word = entropy();
    for (int b = 0; b < 8; ++b, word >>= 4) out.push_back(kHex[word & 15]);
  }
  return out;
}

absl::Status StatusFromHttp(int status, const std::string& message) {
  switch (status) {
    case 400:
    case 413:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::FailedPreconditionError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    case 503:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status StatusFromReply(const HttpReply& reply, const std::string& url) {
  const nlohmann::json j = nlohmann::json::parse(reply.body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_string()) {
    return StatusFromHttp(reply.status, j["error"].get<std::string>());
  }
  std::string type = "no content type";
  for (const auto& [k, v] : reply.headers) {
    if (absl::EqualsIgnoreCase(k, "Content-Type")) type = v;
  }
  absl::string_view first = absl::StripAsciiWhitespace(reply.body);
  first = first.substr(0, std::min(first.find('\n'), size_t{80}));
  return StatusFromHttp(
      reply.status,
      absl::StrCat(url, " answered HTTP ", reply.status, " with a reply that is not the icos API's (", type,
                   first.empty() ? "" : absl::StrCat(": \"", absl::StripAsciiWhitespace(first), "\""),
                   "): is this the icos server's URL?"));
}

absl::StatusOr<nlohmann::json> ApiClient::Json(const std::string& method, const std::string& path,
                                               const std::string& body, const std::string& content_type,
                                               const std::map<std::string, std::string>& headers) {
  auto r = Request(method, path, body, content_type, headers);
  if (!r.ok()) return r.status();
  if (r->status < 200 || r->status >= 300) return StatusFromReply(*r, base_url());
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded()) return StatusFromReply(*r, base_url());
  return j;
}

}  // namespace icos
