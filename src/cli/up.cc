#include "cli/up.h"

#include <arpa/inet.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/node_agent.h"
#include "cli/client.h"
#include "cli/tls_files.h"
#include "controller/controller.h"
#include "controller/http_server.h"
#include "core/policy_presets.h"
#include "devices/registry.h"
#include "gateway/gateway.h"
#include "net/net_util.h"
#include "store/postgres_state_store.h"
#include "store/sqlite_state_store.h"

namespace icos::cli {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop = true; }

}  // namespace

void CatchStopSignals() {
  struct sigaction sa = {};
  sa.sa_handler = OnSignal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool SleepUnlessStopped(int64_t ms) {
  for (int64_t slept = 0; slept < ms && !g_stop; slept += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return !g_stop;
}

namespace {

// How often a leader makes sure it still leads. A standby takes over within
// about a second of the lock's release, so a leader that lost its lock
// stops serving within this long of the takeover; its writes are refused
// meanwhile (the store fences them).
constexpr int64_t kLeadershipCheckMs = 1'000;

// Waits for a stop signal while the store says this process still leads;
// OK on a signal, the reason when leadership was lost.
absl::Status ServeWhileLeading(store::StateStore& st) {
  while (SleepUnlessStopped(kLeadershipCheckMs)) {
    if (absl::Status s = st.CheckLeadership(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The Unix identity the first admin token's jobs run as: the person who
// started the controller (root, or a login account, uid >= 1000). A service
// account like the package's `icos` owns the store, which tasks must not:
// then none, and the admin's jobs run as an account named "admin" (if one
// is made; the operator gives people user tokens instead).
controller::TokenOptions BootstrapAdminIdentity() {
  controller::TokenOptions run_as;
  const uid_t uid = geteuid();
  if (uid == 0 || uid >= 1000) {
    run_as.uid = uid;
    run_as.gid = getegid();
  }
  return run_as;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

}  // namespace

std::string ReadTokenFile(const std::string& path) { return std::string(absl::StripAsciiWhitespace(ReadFile(path))); }

namespace {

void WriteSecret(const std::string& path, const std::string& secret) {
  {
    std::ofstream f(path, std::ios::trunc);
    f << secret << "\n";
  }
  ::chmod(path.c_str(), 0600);
}

struct Plane {
  std::unique_ptr<store::StateStore> store;
  std::unique_ptr<controller::Controller> controller;
  // Declared between the two: it calls the controller, and the API's
  // /metrics calls it, so it stops after the API and before the controller.
  std::unique_ptr<gateway::Gateway> gateway;
  std::unique_ptr<controller::HttpServer> http;
  std::string admin_token, agent_token;
  std::string url;         // how this machine reaches the API (loopback for a wildcard host)
  std::string advertised;  // how other machines reach it (AdvertisedUrl)
  std::string ca_cert;     // the CA local clients trust the API by (ServerFlags::ca_cert); empty: none given
};

bool ServesTls(const ServerFlags& flags) { return flags.tls || !flags.tls_cert_file.empty(); }
std::string Scheme(const ServerFlags& flags) { return ServesTls(flags) ? "https" : "http"; }

// Whether only this machine can reach `host` (a plain-HTTP API there
// sends no token over a network).
bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char ip[16];
  if (inet_pton(AF_INET, host.c_str(), ip) == 1) return ip[0] == 127;
  return host == "::1" || host == "[::1]";
}

// The TLS flags together: both files or neither, --tls instead of them,
// a CA only for HTTPS, an advertised URL of the scheme served.
absl::Status CheckTlsFlags(const ServerFlags& flags) {
  if (flags.tls_cert_file.empty() != flags.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(flags.tls_cert_file.empty() ? "--tls-key" : "--tls-cert",
                     " needs its other half: give both --tls-cert FILE and --tls-key FILE (`icos tls init` makes "
                     "a pair), or neither for plain HTTP"));
  }
  if (flags.tls && !flags.tls_cert_file.empty()) {
    return absl::InvalidArgumentError(
        "--tls makes its own certificate in the data directory: leave out --tls-cert/--tls-key, or leave out "
        "--tls to serve yours");
  }
  if (flags.tls && !flags.ca_cert.empty()) {
    return absl::InvalidArgumentError("--tls makes its own CA (<data dir>/tls/ca.crt): leave out --ca-cert");
  }
  if (!ServesTls(flags) && !flags.ca_cert.empty()) {
    return absl::InvalidArgumentError(
        "--ca-cert names the CA of the API's certificate: it needs --tls-cert and "
        "--tls-key (or, for icos up, --tls)");
  }
  if (ServesTls(flags) && !flags.advertise_url.empty()) {
    for (absl::string_view url : absl::StrSplit(flags.advertise_url, ',', absl::SkipWhitespace())) {
      if (!absl::StartsWithIgnoreCase(absl::StripAsciiWhitespace(url), "https://")) {
        return absl::InvalidArgumentError(absl::StrCat("--advertise-url ", flags.advertise_url,
                                                       ": the API serves HTTPS, so other machines must use an "
                                                       "https:// URL"));
      }
    }
  }
  return absl::OkStatus();
}

// A plain-HTTP API another machine can reach carries every token in clear
// text: say so once at start-up, with the way out.
void WarnIfClearText(const ServerFlags& flags, absl::string_view who, bool up, std::ostream& err) {
  if (ServesTls(flags) || IsLoopbackHost(flags.host)) return;
  err << who << ": warning: the API listens on " << flags.host
      << " without TLS, so tokens cross the network in clear text; serve HTTPS with --tls-cert and --tls-key "
         "(`icos tls init` makes them"
      << (up ? "; or `icos up --tls`" : "") << "; docs/deploy.md, \"TLS\")\n"
      << std::flush;
}

// This machine's own address toward the rest of the network: where its
// default route leaves from (no packet is sent); its host name without one.
std::string PrimaryAddress() {
  for (const char* probe : {"192.0.2.1", "2001:db8::1"}) {  // documentation prefixes: never answered
    if (absl::StatusOr<std::string> a = net::SourceAddressFor(probe); a.ok()) return *a;
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return host;
}

// The URL other machines reach this controller's API at: --advertise-url,
// else http(s)://HOST:PORT, a wildcard HOST standing for PrimaryAddress().
std::string AdvertisedUrl(const ServerFlags& flags, int port) {
  if (!flags.advertise_url.empty()) return flags.advertise_url;
  const std::string host = net::IsWildcardHost(flags.host) ? PrimaryAddress() : flags.host;
  return absl::StrCat(Scheme(flags), "://", net::UrlHost(host), ":", port);
}

// The names `icos up --tls` certifies: this machine by loopback, by --host,
// by its host name, and as advertised to others.
std::vector<std::string> UpCertificateHosts(const ServerFlags& flags) {
  std::vector<std::string> hosts = {"localhost", "127.0.0.1", "::1"};
  auto add = [&hosts](std::string host) {
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty() || net::IsWildcardHost(host) || !IsCertificateHost(host)) return;
    if (std::find(hosts.begin(), hosts.end(), host) == hosts.end()) hosts.push_back(host);
  };
  add(flags.host);
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  add(name);
  if (net::IsWildcardHost(flags.host)) add(PrimaryAddress());
  for (absl::string_view url : absl::StrSplit(flags.advertise_url, ',', absl::SkipWhitespace())) {
    add(net::HostOfUrl(absl::StripAsciiWhitespace(url)));
  }
  return hosts;
}

// `icos up --tls`: the CA and server certificate in <dir>/tls, made on the
// first start and kept (clients keep trusting the same ca.crt).
absl::StatusOr<TlsFilePaths> UpCertificates(const ServerFlags& flags, const std::string& dir, std::ostream& out) {
  const TlsFilePaths paths = TlsPathsIn(dir + "/tls");
  std::error_code ec;
  if (fs::exists(paths.server_cert, ec) && fs::exists(paths.server_key, ec) && fs::exists(paths.ca_cert, ec)) {
    return paths;
  }
  TlsInitOptions o;
  o.dir = dir + "/tls";
  o.hosts = UpCertificateHosts(flags);
  absl::StatusOr<TlsFilePaths> made = InitTlsFiles(o);
  if (!made.ok()) return absl::Status(made.status().code(), absl::StrCat("--tls: ", made.status().message()));
  out << "icos up: made " << (made->made_ca ? "a CA and " : "") << "a server certificate for "
      << absl::StrJoin(o.hosts, ", ") << " in " << o.dir << "\n";
  return made;
}

// Loads the API's certificate and key before serving, so a bad pair is
// reported as such; warns about what clients will refuse.
absl::Status CheckApiCertificate(const ServerFlags& flags, const std::string& cert, const std::string& key, int port,
                                 std::ostream& err) {
  absl::StatusOr<ServerCertificateInfo> info = CheckServerCertificate(cert, key);
  if (!info.ok()) return info.status();
  if (info->not_after_s <= RealClock::Default()->NowMs() / 1000) {
    err << "icos: warning: " << cert << " has expired: every client will refuse the API; renew it (docs/deploy.md, "
        << "\"TLS\")\n";
  }
  const std::string url = AdvertisedUrl(flags, port);
  const std::string advertised = net::HostOfUrl(url);
  if (!CertificateCovers(info->names, advertised)) {
    err << "icos: warning: " << cert << " names " << absl::StrJoin(info->names, ", ") << ", not " << advertised
        << " of the URL other machines are given (" << url
        << "; --advertise-url sets it): agents and users reaching the API by that name will refuse it; "
        << (flags.tls ? absl::StrCat("move ", cert, " and its key away to make a new one on the next start")
                      : std::string("make a certificate that names it (icos tls init --host ...)"))
        << "\n";
  }
  return absl::OkStatus();
}

// The store --store names: PostgreSQL for a postgresql:// (or postgres://)
// URI, else the embedded SQLite database in the data directory.
absl::StatusOr<std::unique_ptr<store::StateStore>> OpenStore(const ServerFlags& flags, const std::string& dir) {
  if (flags.store.empty()) {
    store::SqliteOptions so;
    so.path = dir + "/icos.db";
    auto st = store::SqliteStateStore::Open(so);
    if (!st.ok()) return st.status();
    return std::unique_ptr<store::StateStore>(*std::move(st));
  }
  if (absl::StartsWith(flags.store, "postgresql://") || absl::StartsWith(flags.store, "postgres://")) {
    auto st = store::PostgresStateStore::Open({.conninfo = flags.store});
    if (!st.ok()) return st.status();
    return std::unique_ptr<store::StateStore>(*std::move(st));
  }
  return absl::InvalidArgumentError(
      "--store: expected a PostgreSQL URI such as postgresql:///icos?host=/run/postgresql (or leave it out for "
      "the embedded SQLite database in the data directory)");
}

// This process as the leader record names it: host:pid and the API's URL.
store::LeaderRecord Identity(const ServerFlags& flags) {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  store::LeaderRecord me;
  me.holder = absl::StrCat(host, ":", getpid());
  // Port 0 is picked at start: unknown here.
  me.url = flags.advertise_url.empty() && flags.port == 0 ? "" : AdvertisedUrl(flags, flags.port);
  me.since_ms = RealClock::Default()->NowMs();
  return me;
}

std::string Describe(const store::LeaderRecord& leader) {
  return absl::StrCat("'", leader.holder, "'", leader.url.empty() ? "" : absl::StrCat(" at ", leader.url), " (epoch ",
                      leader.epoch, ")");
}

// Takes the store's leadership. With `standby`, waits while another
// controller leads (and while the store cannot be reached), saying so once
// per change; without, fails naming the leader. Cancelled on a stop signal.
absl::Status Lead(store::StateStore& st, const ServerFlags& flags, bool standby, std::ostream& out) {
  std::string said;
  while (true) {
    absl::StatusOr<store::LeadResult> r = st.TryLead(Identity(flags));
    if (r.ok() && r->acquired) return absl::OkStatus();
    if (!standby) {
      if (!r.ok()) return r.status();
      return absl::FailedPreconditionError(
          absl::StrCat("another controller, ", Describe(r->leader),
                       ", leads this store; stop it, or give this one another --data-dir or --store"));
    }
    const std::string now =
        r.ok() ? absl::StrCat("standby: ", Describe(r->leader), " leads; taking over when it stops")
               : absl::StrCat("standby: cannot reach the store (", r.status().message(), "); retrying");
    if (now != said) out << "icos server: " << now << "\n" << std::flush;
    said = now;
    if (!SleepUnlessStopped(1'000)) return absl::CancelledError("stopped while standing by");
  }
}

// Opens the store, takes its leadership (see Lead), starts the controller
// and its API; creates the admin and agent tokens on first start and keeps
// them in the data directory (0600).
absl::StatusOr<Plane> StartPlane(const ServerFlags& flags, bool standby, std::ostream& out, std::ostream& err) {
  Plane p;
  const std::string dir = flags.data_dir.empty() ? IcosHome() : flags.data_dir;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create data directory ", dir, ": ", ec.message()));
  // Tokens and the store live here: nobody else may even list it (an older
  // icos made it 0755).
  if (::chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make data directory ", dir, " private: ", strerror(errno)));
  }
  auto st = OpenStore(flags, dir);
  if (!st.ok()) return st.status();
  p.store = *std::move(st);
  if (absl::Status s = Lead(*p.store, flags, standby, out); !s.ok()) return s;
  controller::ControllerOptions co;
  auto preset = core::PolicyPreset(flags.policy);
  if (!preset.ok()) return preset.status();
  co.scheduler = *preset;
  if (!flags.order.empty()) co.scheduler.order = flags.order;
  if (!flags.placement.empty()) co.scheduler.placement = flags.placement;
  co.scheduler.max_interruptions_per_hour = flags.max_interruptions_per_hour;
  co.utilisation_step_s = flags.utilisation_step_s;
  co.learning.enabled = flags.learn_runtimes;
  if (core::PolicyWantsLearnedEstimates(flags.policy) && !flags.learn_runtimes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--policy ", flags.policy, " runs on learned estimates; --no-learned-estimates turns them off"));
  }
  co.node_lease_ms = flags.node_lease_s * 1000;
  co.max_checkpoint_window_ms = flags.max_checkpoint_window_s * 1000;
  co.spec_limits.max_job_tasks = flags.max_job_tasks;
  co.spec_limits.max_assignment_bytes = flags.max_job_mib << 20;
  co.webhooks.allow = flags.notify_allow;
  co.webhooks.ca_cert_file = flags.ca_cert;
  if (!flags.notify_secret_file.empty()) {
    std::string secret(absl::StripTrailingAsciiWhitespace(ReadFile(flags.notify_secret_file)));
    if (secret.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--notify-secret-file ", flags.notify_secret_file, " is missing, unreadable or empty"));
    }
    co.webhooks.secret = std::move(secret);
  }
  auto c = controller::Controller::Create(co, p.store.get(), RealClock::Default());
  if (!c.ok()) return c.status();
  p.controller = *std::move(c);
  auto admin = p.controller->BootstrapAdminToken(BootstrapAdminIdentity());
  if (!admin.ok()) return admin.status();
  if (!admin->empty()) {
    WriteSecret(dir + "/admin.token", *admin);
    auto agent = p.controller->CreateToken({"bootstrap", controller::Role::kAdmin, "admin"}, controller::Role::kAgent,
                                           "", "local-agents");
    if (!agent.ok()) return agent.status();
    WriteSecret(dir + "/agent.token", *agent);
  }
  p.admin_token = ReadFile(dir + "/admin.token");
  p.agent_token = ReadFile(dir + "/agent.token");
  if (p.admin_token.empty()) {
    err << "icos: warning: " << dir << "/admin.token is missing; create a token with an existing admin token\n";
  }
  std::string cert = flags.tls_cert_file, key = flags.tls_key_file;
  p.ca_cert = flags.ca_cert;
  if (flags.tls) {
    absl::StatusOr<TlsFilePaths> files = UpCertificates(flags, dir, out);
    if (!files.ok()) return files.status();
    cert = files->server_cert;
    key = files->server_key;
    p.ca_cert = files->ca_cert;
  }
  if (!cert.empty()) {
    if (absl::Status s = CheckApiCertificate(flags, cert, key, flags.port, err); !s.ok()) return s;
  }
  controller::HttpServerOptions ho;
  ho.host = flags.host;
  ho.tls_cert_file = cert;
  ho.tls_key_file = key;
  ho.port = flags.port;
  ho.requests_per_s_per_token = flags.rate_limit;
  ho.metrics_require_auth = flags.metrics_auth;
  ho.limits.max_connections = static_cast<size_t>(flags.max_connections);
  ho.limits.max_connections_per_address = static_cast<size_t>(flags.max_connections_per_address);
  ho.limits.header_timeout_ms = static_cast<int64_t>(flags.header_timeout_s * 1000);
  ho.threads = flags.api_threads;
  ho.agent_threads = flags.agent_threads;
  if (flags.gateway_port > 0) {
    gateway::GatewayOptions go;
    go.host = flags.host;
    go.port = flags.gateway_port;
    // An API on HTTPS: the gateway beside it too, with the same certificate.
    go.tls_cert_file = cert;
    go.tls_key_file = key;
    controller::Controller* c = p.controller.get();
    p.gateway = std::make_unique<gateway::Gateway>(
        go, [c](const std::string& service) { return c->Route(service); }, RealClock::Default());
    // The autoscaler reads what this gateway counts, beside what `icos gateway` processes report.
    c->SetServiceLoadSource([g = p.gateway.get()](int64_t id) { return g->LoadOf(id); });
    if (absl::Status s = p.gateway->Start(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("service gateway on port ", flags.gateway_port, ": ", s.message()));
    }
    ho.extra_metrics = [g = p.gateway.get()](controller::metrics::ExpositionWriter& w) { g->RenderMetrics(w); };
  }
  p.http = std::make_unique<controller::HttpServer>(p.controller.get(), ho);
  if (absl::Status s = p.http->Start(); !s.ok()) return s;
  p.url = net::IsWildcardHost(flags.host)
              ? absl::StrCat(Scheme(flags), "://", flags.host == "::" ? "[::1]" : "127.0.0.1", ":", p.http->port())
              : absl::StrCat(Scheme(flags), "://", net::UrlHost(flags.host), ":", p.http->port());
  p.advertised = AdvertisedUrl(flags, p.http->port());
  p.controller->Start();
  SaveConnection(dir, {p.url, p.admin_token, p.ca_cert});
  return p;
}

}  // namespace

absl::StatusOr<LocalNodeInfo> LocalNode(const AgentFlags& flags) {
  devices::PluginOptions po;
  po.nvml_library = flags.nvml_library;
  po.dcmi_library = flags.dcmi_library;
  po.cndev_library = flags.cndev_library;
  po.rocm_smi_library = flags.rocm_smi_library;
  po.inventory_path = flags.inventory;
  auto plugins = std::make_shared<std::vector<std::unique_ptr<devices::DevicePlugin>>>(devices::DefaultPlugins(po));
  devices::DiscoverOptions dopt;
  dopt.node_name = flags.node_name;
  if (dopt.node_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof(host) - 1);
    dopt.node_name = host[0] ? host : "local";
  }
  auto found = devices::Discover(dopt, *plugins);
  if (!found.ok()) return found.status();
  LocalNodeInfo info;
  core::Node& n = info.node;
  n = found->node;
  for (size_t i = 0; i < found->origin.size(); ++i) {
    const auto& [plugin, pos] = found->origin[i];
    const int index = static_cast<int>(found->plugins[plugin].devices[pos].index);
    info.vendor_index.push_back(index);
    n.devices[i].runtime_index = index;  // shown beside the node's numbering
    info.device_nodes.push_back((*plugins)[plugin]->DeviceNodes({index}));
  }
  auto discovery = std::make_shared<devices::Discovery>(*std::move(found));
  auto last = std::make_shared<std::vector<devices::DeviceState>>();
  const int32_t max_temperature_c = flags.max_device_temperature_c;
  info.check_health = [plugins, discovery, last, max_temperature_c]() {
    *last = devices::CheckNodeHealth(*discovery, *plugins, *last, max_temperature_c);
    std::vector<agent::DeviceCheck> out;
    out.reserve(last->size());
    for (const devices::DeviceState& d : *last) {
      out.push_back({.healthy = d.healthy,
                     .reason = d.reason,
                     .usage = {.utilization_pct = d.utilization_pct, .memory_used_mib = d.memory_used_mib}});
    }
    return out;
  };
  if (flags.cpus > 0) n.cpu_milli = static_cast<int64_t>(flags.cpus * 1000);
  if (flags.memory_mib > 0) n.memory_mib = flags.memory_mib;
  for (const auto& kv : absl::StrSplit(flags.labels, ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    n.labels[p.first] = p.second;
  }
  // --devices vendor/model:count[@memoryGi],...  (sim devices; real vendor plugins come later)
  for (const auto& item : absl::StrSplit(flags.devices, ',', absl::SkipEmpty())) {
    std::vector<std::string> parts = absl::StrSplit(item, ':');
    std::vector<std::string> vm = absl::StrSplit(parts[0], '/');
    int count = 1;
    if (vm.size() != 2 || vm[0].empty() || (parts.size() > 1 && !absl::SimpleAtoi(parts[1], &count)) || count < 1 ||
        count > 64) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices item '", item, "' should look like nvidia/A100-80G:8 (1 to 64 devices)"));
    }
    int32_t vendor_next = 0;  // quick sim devices number after any of the same vendor
    int32_t island_base = 0;
    for (size_t i = 0; i < n.devices.size(); ++i) {
      if (n.devices[i].vendor == vm[0]) vendor_next = std::max(vendor_next, info.vendor_index[i] + 1);
      island_base = std::max(island_base, n.devices[i].island + 1);
    }
    for (int i = 0; i < count; ++i) {
      core::Device d;
      d.vendor = vm[0];
      d.model = vm[1];
      d.memory_mib = 64 * 1024;
      d.island = island_base + i / 4;  // islands of four, like NVLink / HCCS boards
      d.runtime_index = vendor_next + i;
      n.devices.push_back(d);
      info.vendor_index.push_back(vendor_next + i);
      info.device_nodes.emplace_back();  // simulated: no device files
    }
  }
  return info;
}

namespace {

// Starts the node's agent against `server`. Without --address the node
// advertises the address its traffic to `route_to` (a URL other machines
// reach the controller at) leaves from: an address that controller reaches
// it at, and loopback when all of it runs on one machine.
absl::StatusOr<std::unique_ptr<agent::NodeAgent>> StartAgent(const AgentFlags& flags, const std::string& server,
                                                             const std::string& token, const std::string& default_dir,
                                                             const std::string& route_to) {
  auto local = LocalNode(flags);
  if (!local.ok()) return local.status();
  std::string address = flags.address;
  if (address.empty()) {
    // An advertised URL may name a host this machine cannot resolve (icos up
    // on a machine without DNS for itself): then the URL the agent uses.
    absl::StatusOr<std::string> source = net::SourceAddressFor(net::HostOfUrl(route_to));
    if (!source.ok() && route_to != server) source = net::SourceAddressFor(net::HostOfUrl(server));
    if (!source.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("cannot tell which address of this machine the controller (",
                                                        net::HostOfUrl(server),
                                                        ") reaches: ", source.status().message(), "; give --address"));
    }
    address = *source;
  }
  agent::NodeAgentOptions o;
  o.server_url = server;
  o.ca_cert_file = flags.ca_cert;
  o.token = token;
  o.node = local->node;
  o.vendor_index = local->vendor_index;
  o.check_health = local->check_health;
  o.address = address;
  if (!flags.listen.empty()) {
    absl::StatusOr<net::HostPort> listen = net::ParseHostPort(flags.listen);
    if (!listen.ok()) return absl::InvalidArgumentError(absl::StrCat("--listen ", listen.status().message()));
    o.listen_host = listen->host;  // empty: the address
    o.listen_port = listen->port;
  }
  o.work_dir = flags.work_dir.empty() ? absl::StrCat(default_dir, "/agent-", local->node.name) : flags.work_dir;
  if (flags.no_cgroups) o.cgroups.mode = agent::CgroupMode::kDisabled;
  o.device_nodes = local->device_nodes;
  o.identity.allow_root_tasks = flags.allow_root_tasks;
  o.identity.foreign_tasks =
      flags.foreign_tasks == "refuse" ? agent::ForeignTasks::kRefuse : agent::ForeignTasks::kRunAsAgent;
  o.jobs_dir = flags.jobs_dir;
  o.checkpoint_dir = flags.checkpoint_dir;
  o.checkpoint_retention_ms = flags.checkpoint_retention_s * 1000;
  o.checkpoint_sweep_ms = flags.checkpoint_sweep_s * 1000;
  if (geteuid() != 0) {
    std::cerr << "icos agent: not running as root, so every task runs as this agent's own user"
              << (o.identity.foreign_tasks == agent::ForeignTasks::kRefuse ? " (other users' tasks are refused)"
                                                                           : " whoever owns it")
              << " (docs/security.md)\n";
  }
  o.health_check_program = flags.health_check_program;
  o.health_check_interval_ms = static_cast<int64_t>(flags.health_check_interval_s * 1000);
  // A check may run as long as the interval between checks, at most a minute.
  o.health_check_timeout_ms = std::min<int64_t>(o.health_check_interval_ms, 60'000);
  auto a = std::make_unique<agent::NodeAgent>(o);
  if (absl::Status st = a->Start(); !st.ok()) return st;
  return a;
}

}  // namespace

int RunUp(const ServerFlags& server, const AgentFlags& agent_flags, std::ostream& out, std::ostream& err) {
  CatchStopSignals();
  // A one-machine cluster is its starter's: started by root, the admin's
  // jobs (which run as root) may run on its own agent.
  AgentFlags agent = agent_flags;
  if (geteuid() == 0) agent.allow_root_tasks = true;
  if (absl::Status s = CheckTlsFlags(server); !s.ok()) {
    err << "icos up: " << s.message() << "\n";
    return 2;
  }
  WarnIfClearText(server, "icos up", /*up=*/true, err);
  auto plane = StartPlane(server, /*standby=*/false, out, err);
  if (!plane.ok()) {
    err << "icos up: " << plane.status().message() << "\n";
    return 1;
  }
  const std::string dir = server.data_dir.empty() ? IcosHome() : server.data_dir;
  agent.ca_cert = plane->ca_cert;
  auto a = StartAgent(agent, plane->url, plane->agent_token, dir, plane->advertised);
  if (!a.ok()) {
    err << "icos up: local agent: " << a.status().message() << "\n";
    return 1;
  }
  const std::string ca = plane->ca_cert.empty() ? "" : absl::StrCat(" --ca-cert ", plane->ca_cert);
  out << "icos is up\n"
      << "  API:         " << plane->url << "\n"
      << "  admin token: " << dir << "/admin.token (the CLI finds it in " << dir << "/config.json)\n"
      << (plane->ca_cert.empty()
              ? ""
              : absl::StrCat("  CA:          ", plane->ca_cert, " (copy it to the machines of agents and users)\n"))
      << "  join a node: icos agent --server " << plane->advertised << ca << " --token $(cat " << dir
      << "/agent.token)\n"
      << (plane->gateway ? absl::StrCat("  gateway:     ", absl::StartsWith(plane->url, "https://") ? "https" : "http",
                                        "://", net::UrlHost(server.host == "0.0.0.0" ? "127.0.0.1" : server.host), ":",
                                        plane->gateway->port(), "/<service>/... (docs/services.md)\n")
                         : "")
      << "  data:        " << dir << "/icos.db\n"
      << "Ctrl-C stops it.\n"
      << std::flush;
  const absl::Status lost = ServeWhileLeading(*plane->store);
  if (!lost.ok()) err << "icos up: no longer leads the store: " << lost.message() << "\n";
  out << "icos: stopping tasks and shutting down\n" << std::flush;
  (*a)->StopAllTasks(5'000);
  (*a)->Stop();
  if (plane->gateway) plane->gateway->Stop();
  plane->controller->Stop();
  plane->http->Stop();
  return lost.ok() ? 0 : 1;
}

// A controller that leads serves; one that finds another leading the store
// stands by and takes over when that one stops (high availability: run one
// per machine on one PostgreSQL database). A leader that loses the store's
// lock stops serving at once and stands by again.
int RunServer(const ServerFlags& server, std::ostream& out, std::ostream& err) {
  CatchStopSignals();
  if (absl::Status s = CheckTlsFlags(server); !s.ok()) {
    err << "icos server: " << s.message() << "\n";
    return 2;
  }
  WarnIfClearText(server, "icos server", /*up=*/false, err);
  const std::string dir = server.data_dir.empty() ? IcosHome() : server.data_dir;
  bool first = true;
  while (!g_stop) {
    auto plane = StartPlane(server, /*standby=*/true, out, err);
    if (!plane.ok()) {
      if (absl::IsCancelled(plane.status())) return 0;
      // At start a bad store is a configuration error; after a lost lead the
      // store is more likely down for a while: keep standing by.
      if (first || !absl::IsUnavailable(plane.status())) {
        err << "icos server: " << plane.status().message() << "\n";
        return 1;
      }
      if (!SleepUnlessStopped(1'000)) return 0;
      continue;
    }
    first = false;
    absl::StatusOr<store::LeaderRecord> leader = plane->store->GetLeader();
    out << "icos server listening on " << plane->url
        << (plane->advertised != plane->url ? absl::StrCat(", advertised as ", plane->advertised) : "") << " (data "
        << (server.store.empty() ? dir + "/icos.db" : std::string("in PostgreSQL"))
        << (leader.ok() ? absl::StrCat("; leading, epoch ", leader->epoch) : "") << "; policy " << server.policy
        << ")\n"
        << std::flush;
    const absl::Status lost = ServeWhileLeading(*plane->store);
    if (plane->gateway) plane->gateway->Stop();
    plane->controller->Stop();
    plane->http->Stop();
    if (lost.ok()) return 0;
    err << "icos server: stopped serving: " << lost.message() << "; standing by\n" << std::flush;
  }
  return 0;
}

int RunAgent(const AgentFlags& flags, std::ostream& out, std::ostream& err) {
  std::string token = flags.token;
  if (!flags.token_file.empty()) {
    token = ReadTokenFile(flags.token_file);
    if (token.empty()) {
      err << "icos agent: " << flags.token_file << " holds no token (its first line should be the agent token)\n";
      return 1;
    }
  }
  if (flags.server.empty() || token.empty()) {
    err << "icos agent: --server and --token (or --token-file) are required (the agent token is agent.token in the "
           "server's data directory)\n";
    return 1;
  }
  if (!flags.ca_cert.empty() && !absl::StrContains(absl::AsciiStrToLower(flags.server), "https://")) {
    err << "icos agent: --ca-cert is given but --server " << flags.server
        << " is plain http://: use the controller's https:// URL\n";
    return 2;
  }
  auto a = StartAgent(flags, flags.server, token, IcosHome(), flags.server);
  if (!a.ok()) {
    err << "icos agent: " << a.status().message() << "\n";
    return 1;
  }
  out << "icos agent joined " << flags.server << " as " << (*a)->address() << " (logs served at " << (*a)->agent_url()
      << ")\n"
      << std::flush;
  CatchStopSignals();
  while (SleepUnlessStopped(1'000)) {
  }
  // Tasks keep running: a restarted agent adopts them.
  (*a)->Stop();
  return 0;
}

}  // namespace icos::cli
