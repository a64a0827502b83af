// Controller: tokens and who the caller is (the policy itself is authz.cc).
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/controller.h"

namespace icos::controller {
namespace {

absl::StatusOr<std::string> NewSecret() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return absl::InternalError("no randomness for a token");
  static const char* kHex = "0123456789abcdef";
  std::string out = "icos_";
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

}  // namespace

namespace {

std::string Hex(const unsigned char* digest, unsigned int len) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

}  // namespace

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

std::string HmacSha256Hex(const std::string& key, const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), digest, &len);
  return Hex(digest, len);
}

// --- auth ----------------------------------------------------------------------

absl::StatusOr<Principal> Controller::Authenticate(const std::string& token) {
  if (token.empty()) {
    return absl::UnauthenticatedError("no token: send 'Authorization: Bearer <token>' (see `icos token create`)");
  }
  std::lock_guard<std::mutex> lock(tokens_mu_);
  auto it = tokens_.find(Sha256Hex(token));
  if (it == tokens_.end() || it->second.revoked) {
    return absl::UnauthenticatedError("unknown or revoked token: ask an admin for a new one (`icos token create`)");
  }
  store::TokenRecord& t = it->second;
  auto role = ParseRole(t.role);
  if (!role) return absl::UnauthenticatedError("token has an unknown role");
  const int64_t now = clock_->NowMs();
  if (t.expires_ms > 0 && now >= t.expires_ms) {
    return absl::UnauthenticatedError("token expired: ask an admin for a new one (`icos token create --ttl`)");
  }
  // Kept to the minute: a write per request would cost more than it tells.
  if (now - t.last_used_ms >= 60'000) {
    t.last_used_ms = now;
    token_use_dirty_.insert(t.token_hash);
  }
  return Principal{t.name, *role, t.user, t.uid, t.gid, t.node};
}

absl::StatusOr<std::pair<store::TokenRecord, std::string>> Controller::NewToken(Role role, const std::string& user,
                                                                                const std::string& name,
                                                                                const TokenOptions& options) const {
  if (role == Role::kUser && user.empty()) return absl::InvalidArgumentError("a user token needs --user");
  if (options.gid >= 0 && options.uid < 0) return absl::InvalidArgumentError("--gid needs --uid");
  if (options.ttl_ms < 0) return absl::InvalidArgumentError("--ttl must not be negative");
  auto secret = NewSecret();
  if (!secret.ok()) return secret.status();
  store::TokenRecord t;
  t.token_hash = Sha256Hex(*secret);
  t.name = name.empty() ? absl::StrCat(RoleName(role), "-", user) : name;
  t.role = RoleName(role);
  t.user = role == Role::kAdmin && user.empty() ? "admin" : user;
  t.created_ms = clock_->NowMs();
  t.uid = options.uid;
  t.gid = options.uid >= 0 && options.gid < 0 ? options.uid : options.gid;
  t.expires_ms = options.ttl_ms > 0 ? t.created_ms + options.ttl_ms : 0;
  return std::make_pair(t, *secret);
}

absl::StatusOr<std::string> Controller::CreateToken(const Principal& caller, Role role, const std::string& user,
                                                    const std::string& name, const TokenOptions& options) {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  if (role == Role::kNode) {
    return absl::InvalidArgumentError("node credentials are made when a node joins with a join token (role agent)");
  }
  auto made = NewToken(role, user, name, options);
  if (!made.ok()) return made.status();
  store::WriteBatch b;
  b.tokens.push_back(made->first);
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(tokens_mu_);
  tokens_[made->first.token_hash] = made->first;
  return made->second;
}

absl::StatusOr<std::vector<store::TokenRecord>> Controller::ListTokens(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(tokens_mu_);
  std::vector<store::TokenRecord> out;
  for (const auto& [hash, t] : tokens_) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(b.created_ms, b.token_hash) < std::tie(a.created_ms, a.token_hash);
  });
  return out;
}

absl::StatusOr<store::TokenRecord> Controller::RevokeToken(const Principal& caller, const std::string& which) {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  if (which.empty()) return absl::InvalidArgumentError("name the token to revoke (its id or name; icos token list)");
  std::lock_guard<std::mutex> lock(tokens_mu_);
  std::vector<store::TokenRecord*> found;
  for (auto& [hash, t] : tokens_) {
    if (t.revoked) continue;
    if ((which.size() >= 8 && hash.rfind(which, 0) == 0) || t.name == which) found.push_back(&t);
  }
  if (found.empty()) return absl::NotFoundError(absl::StrCat("no active token '", which, "' (icos token list)"));
  if (found.size() > 1) {
    std::vector<std::string> ids;
    for (const auto* t : found) ids.push_back(t->token_hash.substr(0, 12));
    return absl::FailedPreconditionError(absl::StrCat("'", which, "' names ", found.size(),
                                                      " tokens; revoke one by its id: ", absl::StrJoin(ids, ", ")));
  }
  store::TokenRecord revoked = *found[0];
  revoked.revoked = true;
  store::WriteBatch b;
  b.tokens.push_back(revoked);
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  *found[0] = revoked;
  return revoked;
}

absl::Status Controller::FlushTokenUse() {
  std::lock_guard<std::mutex> lock(tokens_mu_);
  if (token_use_dirty_.empty()) return absl::OkStatus();
  store::WriteBatch b;
  for (const std::string& hash : token_use_dirty_) {
    if (auto it = tokens_.find(hash); it != tokens_.end()) b.tokens.push_back(it->second);
  }
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  token_use_dirty_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Controller::BootstrapAdminToken(const TokenOptions& run_as) {
  {
    std::lock_guard<std::mutex> lock(tokens_mu_);
    for (const auto& [h, t] : tokens_) {
      if (t.role == "admin" && !t.revoked) return std::string();
    }
  }
  return CreateToken(Principal{"bootstrap", Role::kAdmin, "admin"}, Role::kAdmin, "admin", "admin", run_as);
}

}  // namespace icos::controller
