#include "cli/tls_files.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace icos::cli {
namespace {

namespace fs = std::filesystem;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

// The reason for the last OpenSSL failure on this thread ("" if none), and
// clears the queue so a later message does not pick up a stale one.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

absl::Status SslFailure(const std::string& what) {
  const std::string why = OpenSslError();
  return absl::InternalError(why.empty() ? what : absl::StrCat(what, ": ", why));
}

// An IP literal's bytes (4 or 16), or empty for anything else ("[::1]" too).
std::string IpBytes(std::string host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned char buf[16];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) return std::string(reinterpret_cast<char*>(buf), 4);
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) return std::string(reinterpret_cast<char*>(buf), 16);
  return "";
}

std::string IpText(const unsigned char* data, int len) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (len == 4) inet_ntop(AF_INET, data, buf, sizeof(buf));
  if (len == 16) inet_ntop(AF_INET6, data, buf, sizeof(buf));
  return buf;
}

// A DNS name a certificate may carry: labels of letters, digits and inner
// hyphens, a leading "*." allowed (RFC 1123, RFC 6125 wildcards).
bool ValidDnsName(absl::string_view name) {
  if (absl::StartsWith(name, "*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char c : label) {
      if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
  }
  return true;
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return absl::NotFoundError(absl::StrCat(path, " does not exist"));
  Bio bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return absl::PermissionDeniedError(absl::StrCat("cannot read ", path, ": ", strerror(errno)));
  std::string out;
  char buf[4096];
  int n;
  while ((n = BIO_read(bio.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

absl::StatusOr<Cert> LoadCert(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWhole(path);
  if (!text.ok()) return text.status();
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no PEM certificate (", OpenSslError(),
                                                   "); expected a file starting with "
                                                   "-----BEGIN CERTIFICATE-----"));
  }
  return cert;
}

absl::StatusOr<Key> LoadKey(const std::string& path) {
  absl::StatusOr<std::string> text = ReadWhole(path);
  if (!text.ok()) return text.status();
  Bio bio(BIO_new_mem_buf(text->data(), static_cast<int>(text->size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " holds no unencrypted PEM private key (", OpenSslError(),
                     "); expected -----BEGIN PRIVATE KEY----- (a key with a passphrase cannot be used unattended)"));
  }
  return key;
}

template <class Write>
absl::StatusOr<std::string> Pem(Write write) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!write(bio.get())) return SslFailure("cannot encode PEM");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

// Writes `content` to a new file `path` with `mode`, never replacing one:
// into a temporary file first, then linked into place (link fails if the
// name exists), so a crash leaves no half-written key behind.
absl::Status WriteNewFile(const std::string& path, const std::string& content, mode_t mode) {
  std::string tmp = path + ".tmp-XXXXXX";
  const int fd = mkstemp(tmp.data());
  if (fd < 0) return absl::PermissionDeniedError(absl::StrCat("cannot create ", tmp, ": ", strerror(errno)));
  // The umask does not decide: a certificate must be readable by the
  // service that serves it, a key by nobody else.
  bool ok = fchmod(fd, mode) == 0;
  for (size_t done = 0; ok && done < content.size();) {
    const ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<size_t>(n);
  }
  ok = ok && fsync(fd) == 0;
  const int saved = errno;
  close(fd);
  if (!ok) {
    unlink(tmp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path, ": ", strerror(saved)));
  }
  const int linked = link(tmp.c_str(), path.c_str());
  const int link_errno = errno;
  unlink(tmp.c_str());
  if (linked != 0) {
    if (link_errno == EEXIST)
      return absl::AlreadyExistsError(absl::StrCat(path, " already exists; not overwriting it"));
    return absl::InternalError(absl::StrCat("cannot create ", path, ": ", strerror(link_errno)));
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) return SslFailure(absl::StrCat("cannot make the extension ", OBJ_nid2sn(nid), "=", value));
  const int added = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (added != 1) return SslFailure(absl::StrCat("cannot add the extension ", OBJ_nid2sn(nid)));
  return absl::OkStatus();
}

// A random positive serial of 159 bits: unique without a serial file, as
// RFC 5280 (at most 20 bytes) and the CA/Browser Forum (64 random bits) ask.
absl::Status SetRandomSerial(X509* cert) {
  Bignum bn(BN_new());
  if (!bn || BN_rand(bn.get(), 159, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) != 1) return SslFailure("no random serial");
  if (BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) == nullptr) return SslFailure("cannot set serial");
  return absl::OkStatus();
}

absl::Status SetName(X509_NAME* name, const std::string& cn) {
  for (const auto& [field, value] : {std::pair<const char*, std::string>{"O", "icos"}, {"CN", cn}}) {
    const auto* bytes = reinterpret_cast<const unsigned char*>(value.c_str());
    if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8, bytes, -1, -1, 0) != 1) {
      return SslFailure(absl::StrCat("cannot set the name ", field, "=", value));
    }
  }
  return absl::OkStatus();
}

// A certificate's frame: version 3, random serial, subject, public key,
// valid from an hour ago (clients with a clock a little behind) for `days`.
absl::StatusOr<Cert> NewCert(EVP_PKEY* key, const std::string& cn, int64_t days) {
  Cert cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) return SslFailure("cannot make a certificate");
  if (absl::Status st = SetRandomSerial(cert.get()); !st.ok()) return st;
  if (absl::Status st = SetName(X509_get_subject_name(cert.get()), cn); !st.ok()) return st;
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3'600) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), static_cast<int>(days), 0, nullptr) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return SslFailure("cannot set the certificate's validity and key");
  }
  return cert;
}

absl::StatusOr<Key> NewKey() {
  Key key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return SslFailure("cannot generate an EC P-256 key");
  return key;
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) return SslFailure("cannot sign the certificate");
  return absl::OkStatus();
}

std::string RandomHex(int bytes) {
  unsigned char buf[16];
  if (RAND_bytes(buf, bytes) != 1) return "0";
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < bytes; ++i) {
    out.push_back(kHex[buf[i] >> 4]);
    out.push_back(kHex[buf[i] & 15]);
  }
  return out;
}

// subjectAltName entries for `hosts`: IP literals as iPAddress, the rest as dNSName.
absl::Status AddSubjectAltNames(X509* cert, const std::vector<std::string>& hosts) {
  Names names(sk_GENERAL_NAME_new_null());
  for (const std::string& host : hosts) {
    GENERAL_NAME* gen = GENERAL_NAME_new();
    const std::string ip = IpBytes(host);
    if (!ip.empty()) {
      ASN1_OCTET_STRING* octets = ASN1_OCTET_STRING_new();
      ASN1_OCTET_STRING_set(octets, reinterpret_cast<const unsigned char*>(ip.data()), static_cast<int>(ip.size()));
      GENERAL_NAME_set0_value(gen, GEN_IPADD, octets);
    } else {
      ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
      ASN1_STRING_set(dns, host.data(), static_cast<int>(host.size()));
      GENERAL_NAME_set0_value(gen, GEN_DNS, dns);
    }
    sk_GENERAL_NAME_push(names.get(), gen);
  }
  if (X509_add1_ext_i2d(cert, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return SslFailure("cannot add the subjectAltName extension");
  }
  return absl::OkStatus();
}

std::vector<std::string> SubjectAltNames(X509* cert) {
  std::vector<std::string> out;
  Names names(static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gen = sk_GENERAL_NAME_value(names.get(), i);
    if (gen->type == GEN_DNS) {
      const ASN1_STRING* s = gen->d.dNSName;
      out.push_back(absl::StrCat(
          "DNS:", std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s))));
    } else if (gen->type == GEN_IPADD) {
      out.push_back(
          absl::StrCat("IP:", IpText(ASN1_STRING_get0_data(gen->d.iPAddress), ASN1_STRING_length(gen->d.iPAddress))));
    }
  }
  return out;
}

int64_t UnixSeconds(const ASN1_TIME* t) {
  struct tm tm = {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string Date(int64_t unix_s) {
  const time_t t = static_cast<time_t>(unix_s);
  struct tm tm = {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%d", &tm);
  return buf;
}

// Writes a key (0600) and then its certificate (0644), neither overwriting.
absl::Status WriteKeyAndCert(EVP_PKEY* key, X509* cert, const std::string& key_path, const std::string& cert_path) {
  absl::StatusOr<std::string> key_pem =
      Pem([&](BIO* b) { return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr) == 1; });
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::string> cert_pem = Pem([&](BIO* b) { return PEM_write_bio_X509(b, cert) == 1; });
  if (!cert_pem.ok()) return cert_pem.status();
  if (absl::Status st = WriteNewFile(key_path, *key_pem, 0600); !st.ok()) return st;
  return WriteNewFile(cert_path, *cert_pem, 0644);
}

absl::Status MakeCa(const TlsInitOptions& o, const TlsFilePaths& paths) {
  absl::StatusOr<Key> key = NewKey();
  if (!key.ok()) return key.status();
  // A random suffix tells one cluster's CA from another's in error messages.
  absl::StatusOr<Cert> cert = NewCert(key->get(), absl::StrCat("icos CA ", RandomHex(4)), o.ca_days);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) return SslFailure("cannot set the issuer");
  // pathlen:0: the CA signs server certificates only, never another CA.
  for (const auto& [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                                   {NID_key_usage, "critical,keyCertSign,cRLSign"},
                                   {NID_subject_key_identifier, "hash"}}) {
    if (absl::Status st = AddExtension(c, c, nid, value); !st.ok()) return st;
  }
  if (absl::Status st = Sign(c, key->get()); !st.ok()) return st;
  return WriteKeyAndCert(key->get(), c, paths.ca_key, paths.ca_cert);
}

absl::Status MakeServer(const TlsInitOptions& o, const TlsFilePaths& paths) {
  absl::StatusOr<Cert> ca = LoadCert(paths.ca_cert);
  if (!ca.ok()) return ca.status();
  absl::StatusOr<Key> ca_key = LoadKey(paths.ca_key);
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_private_key(ca->get(), ca_key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(paths.ca_key, " is not the key of ", paths.ca_cert,
                                                   "; put the CA's own key beside it, or use another --dir"));
  }
  if (X509_check_ca(ca->get()) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(paths.ca_cert, " is not a CA certificate (no CA:TRUE)"));
  }
  const int64_t ca_end = UnixSeconds(X509_get0_notAfter(ca->get()));
  if (ca_end <= time(nullptr)) {
    return absl::FailedPreconditionError(
        absl::StrCat("the CA ", paths.ca_cert, " expired on ", Date(ca_end),
                     "; make a new one in another --dir and give its ca.crt to every agent and user"));
  }
  absl::StatusOr<Key> key = NewKey();
  if (!key.ok()) return key.status();
  // CN is limited to 64 characters and ignored beside subjectAltName.
  const std::string cn = o.hosts.front().size() <= 64 ? o.hosts.front() : "icos server";
  absl::StatusOr<Cert> cert = NewCert(key->get(), cn, o.server_days);
  if (!cert.ok()) return cert.status();
  X509* c = cert->get();
  if (X509_set_issuer_name(c, X509_get_subject_name(ca->get())) != 1) return SslFailure("cannot set the issuer");
  // Never valid past its CA: clients would refuse it then anyway.
  if (ASN1_TIME_compare(X509_get0_notAfter(c), X509_get0_notAfter(ca->get())) > 0 &&
      X509_set1_notAfter(c, X509_get0_notAfter(ca->get())) != 1) {
    return SslFailure("cannot limit the certificate to its CA's lifetime");
  }
  for (const auto& [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:FALSE"},
                                   {NID_key_usage, "critical,digitalSignature"},
                                   {NID_ext_key_usage, "serverAuth"},
                                   {NID_subject_key_identifier, "hash"},
                                   {NID_authority_key_identifier, "keyid:always"}}) {
    if (absl::Status st = AddExtension(c, ca->get(), nid, value); !st.ok()) return st;
  }
  if (absl::Status st = AddSubjectAltNames(c, o.hosts); !st.ok()) return st;
  if (absl::Status st = Sign(c, ca_key->get()); !st.ok()) return st;
  return WriteKeyAndCert(key->get(), c, paths.server_key, paths.server_cert);
}

}  // namespace

TlsFilePaths TlsPathsIn(const std::string& dir) {
  return {.ca_cert = dir + "/ca.crt",
          .ca_key = dir + "/ca.key",
          .server_cert = dir + "/server.crt",
          .server_key = dir + "/server.key"};
}

absl::StatusOr<TlsFilePaths> InitTlsFiles(const TlsInitOptions& o) {
  if (o.dir.empty()) return absl::InvalidArgumentError("no directory for the certificates (--dir)");
  if (o.hosts.empty()) {
    return absl::InvalidArgumentError(
        "no host names: give every name and address clients reach the server by, e.g. --host "
        "ctl.example.com,10.0.0.10");
  }
  for (const std::string& host : o.hosts) {
    if (!IsCertificateHost(host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", host, "' is neither an IP address nor a DNS name (letters, digits, '-', '.')"));
    }
  }
  TlsFilePaths paths = TlsPathsIn(o.dir);
  std::error_code ec;
  for (const std::string* p : {&paths.server_cert, &paths.server_key}) {
    if (fs::exists(*p, ec)) {
      return absl::AlreadyExistsError(
          absl::StrCat(*p, " already exists; not overwriting it (to renew the server certificate, move ",
                       paths.server_cert, " and ", paths.server_key, " away and run this again)"));
    }
  }
  const bool have_cert = fs::exists(paths.ca_cert, ec), have_key = fs::exists(paths.ca_key, ec);
  if (have_cert != have_key) {
    return absl::FailedPreconditionError(
        absl::StrCat(have_cert ? paths.ca_cert : paths.ca_key, " exists but ", have_cert ? paths.ca_key : paths.ca_cert,
                     " does not: a CA needs both; restore the missing one, or use another --dir"));
  }
  // The certificates are public (the service serving them may run as
  // another user, e.g. /etc/icos/tls for the icos-server unit); the keys
  // protect themselves (0600). A directory made here is 0755 whatever the
  // umask (icos runs with 077); an existing one keeps its mode.
  if (!fs::exists(o.dir, ec)) {
    fs::create_directories(o.dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create ", o.dir, ": ", ec.message()));
    if (chmod(o.dir.c_str(), 0755) != 0) {
      return absl::PermissionDeniedError(absl::StrCat("cannot chmod ", o.dir, ": ", strerror(errno)));
    }
  }
  paths.made_ca = !have_cert;
  if (paths.made_ca) {
    if (absl::Status st = MakeCa(o, paths); !st.ok()) return st;
  }
  if (absl::Status st = MakeServer(o, paths); !st.ok()) return st;
  return paths;
}

int RunTlsInit(TlsInitOptions options, const std::string& hosts, std::ostream& out, std::ostream& err) {
  options.hosts.clear();
  for (absl::string_view host : absl::StrSplit(hosts, ',', absl::SkipWhitespace())) {
    options.hosts.emplace_back(absl::StripAsciiWhitespace(host));
  }
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(options);
  if (!made.ok()) {
    err << "icos tls init: " << made.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<ServerCertificateInfo> info = CheckServerCertificate(made->server_cert, made->server_key);
  if (!info.ok()) {  // just written: a failure here is a bug, not a user's mistake
    err << "icos tls init: " << info.status().message() << "\n";
    return 1;
  }
  out << (made->made_ca ? "made a CA and a server certificate" : "made a server certificate, signed by the CA")
      << " in " << options.dir << ":\n"
      << "  " << made->ca_cert << (made->made_ca ? "" : " (kept)")
      << "  the CA certificate: give it to every agent (--ca-cert) and user (--ca-cert or ICOS_CA_CERT)\n"
      << "  " << made->ca_key << (made->made_ca ? "" : " (kept)")
      << "  the CA's key: it can sign certificates every client trusts; keep it secret, off the controller if "
         "you can (it is needed again only to renew)\n"
      << "  " << made->server_cert << "  the API's certificate, for " << absl::StrJoin(info->names, ", ")
      << ", valid until " << Date(info->not_after_s) << "\n"
      << "  " << made->server_key << "  its key: readable by the controller only\n"
      << "serve with: icos server --tls-cert " << made->server_cert << " --tls-key " << made->server_key
      << " ... (docs/deploy.md, \"TLS\")\n";
  return 0;
}

absl::StatusOr<ServerCertificateInfo> CheckServerCertificate(const std::string& cert_file,
                                                             const std::string& key_file) {
  absl::StatusOr<Cert> cert = LoadCert(cert_file);
  if (!cert.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-cert: ", cert.status().message()));
  absl::StatusOr<Key> key = LoadKey(key_file);
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("--tls-key: ", key.status().message()));
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(key_file, " is not the private key of ", cert_file,
                                                   " (--tls-key must be the key the certificate was made for)"));
  }
  ServerCertificateInfo info;
  info.names = SubjectAltNames(cert->get());
  info.not_after_s = UnixSeconds(X509_get0_notAfter(cert->get()));
  return info;
}

bool IsCertificateHost(const std::string& host) { return !IpBytes(host).empty() || ValidDnsName(host); }

bool CertificateCovers(const std::vector<std::string>& names, const std::string& host_in) {
  std::string host = host_in;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string ip = IpBytes(host);
  for (const std::string& name : names) {
    if (absl::StartsWith(name, "IP:")) {
      if (!ip.empty() && IpBytes(name.substr(3)) == ip) return true;
    } else if (absl::StartsWith(name, "DNS:") && ip.empty()) {
      const std::string pattern = name.substr(4);
      if (absl::EqualsIgnoreCase(pattern, host)) return true;
      // "*.example.com" covers exactly one more label.
      if (absl::StartsWith(pattern, "*.")) {
        const size_t dot = host.find('.');
        if (dot != std::string::npos && dot > 0 && absl::EqualsIgnoreCase(host.substr(dot + 1), pattern.substr(2))) {
          return true;
        }
      }
    }
  }
  return false;
}

}  // namespace icos::cli
