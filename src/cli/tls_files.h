// The certificates icos serves its API with (`icos tls init`, `icos up
// --tls`): a private CA and a server certificate it signs, made with
// OpenSSL's EVP/X509 APIs (EC P-256 keys, SHA-256 signatures), so a cluster
// needs no openssl command line or outside CA to speak HTTPS. Clients trust
// the CA (ca.crt, --ca-cert / ICOS_CA_CERT), not the server certificate, so
// renewing the latter changes nothing on the nodes.
//
// Thread-safety: the functions share no state.
#ifndef ICOS_CLI_TLS_FILES_H_
#define ICOS_CLI_TLS_FILES_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace icos::cli {

struct TlsInitOptions {
  std::string dir;  // created if missing; holds ca.crt, ca.key, server.crt, server.key
  // Names clients reach the server by: DNS names (a leading "*." for a
  // wildcard) and IP literals (IPv4 or IPv6); each becomes a
  // subjectAltName entry. REQUIRES: at least one.
  std::vector<std::string> hosts;
  int64_t ca_days = 3'650;    // the CA: 10 years (clients keep trusting one file)
  int64_t server_days = 730;  // the server certificate: about 2 years, then renew
};

struct TlsFilePaths {
  std::string ca_cert, ca_key, server_cert, server_key;
  bool made_ca = false;  // false: an existing CA in `dir` signed the server certificate
};

// The four files' paths in `dir`.
TlsFilePaths TlsPathsIn(const std::string& dir);

// Makes the server certificate and key for `hosts` in `dir`, signed by the
// CA there (ca.crt and ca.key), which is made first when neither file
// exists. Never overwrites: fails naming the file when server.crt or
// server.key exists, or when only one of ca.crt and ca.key does. Keys are
// written 0600, certificates 0644 (whatever the umask).
absl::StatusOr<TlsFilePaths> InitTlsFiles(const TlsInitOptions& options);

// `icos tls init`: InitTlsFiles for the comma-separated `hosts`, then says
// what each file is for and what to do next. The exit code.
int RunTlsInit(TlsInitOptions options, const std::string& hosts, std::ostream& out, std::ostream& err);

// What a server certificate names and how long it lasts (for start-up checks).
struct ServerCertificateInfo {
  std::vector<std::string> names;  // "DNS:host" and "IP:addr" subjectAltName entries
  int64_t not_after_s = 0;         // Unix seconds
};

// Loads a PEM certificate (the first of a chain file) and its private key and
// checks that they belong together; InvalidArgument naming the file and the
// fix otherwise.
absl::StatusOr<ServerCertificateInfo> CheckServerCertificate(const std::string& cert_file, const std::string& key_file);

// Whether `host` can be a certificate's name: an IP literal or a DNS name
// (letters, digits, inner '-', dot-separated; a leading "*." allowed).
bool IsCertificateHost(const std::string& host);

// Whether `host` (a DNS name or an IP literal, as in a URL without brackets)
// is one of `names` ("DNS:..."/"IP:..."; a "DNS:*.x" entry covers one label).
bool CertificateCovers(const std::vector<std::string>& names, const std::string& host);

}  // namespace icos::cli

#endif  // ICOS_CLI_TLS_FILES_H_
