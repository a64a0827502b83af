#include "devices/host.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace icos::devices {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path);
  if (!in) return false;
  std::stringstream buffer;
  buffer << in.rdbuf();
  *out = buffer.str();
  return true;
}

// Finds "<key>: <n> kB" in a meminfo-style text (a NUMA node's lines carry a
// "Node N " prefix, which is skipped by searching for the key anywhere).
int64_t MemInfoKib(absl::string_view text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    size_t at = line.find(key);
    if (at == absl::string_view::npos) continue;
    absl::string_view rest = line.substr(at + key.size());
    if (!absl::ConsumePrefix(&rest, ":")) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, "kB");
    int64_t kib = 0;
    if (absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &kib)) return kib;
  }
  return -1;
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view input) {
  std::vector<int> cpus;
  absl::string_view text = absl::StripAsciiWhitespace(absl::string_view(input.data(), input.size()));
  if (text.empty()) return cpus;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::pair<absl::string_view, absl::string_view> range = absl::StrSplit(part, '-');
    int lo = 0, hi = 0;
    if (!absl::SimpleAtoi(range.first, &lo)) {
      return absl::InvalidArgumentError(absl::StrCat("bad CPU list \"", text, "\""));
    }
    hi = lo;
    if (!range.second.empty() && !absl::SimpleAtoi(range.second, &hi)) {
      return absl::InvalidArgumentError(absl::StrCat("bad CPU list \"", text, "\""));
    }
    if (hi < lo || lo < 0) return absl::InvalidArgumentError(absl::StrCat("bad CPU list \"", text, "\""));
    for (int c = lo; c <= hi; ++c) cpus.push_back(c);
  }
  return cpus;
}

absl::StatusOr<HostResources> ReadHost(const HostOptions& options) {
  HostResources host;
  std::string text;
  const std::string meminfo = absl::StrCat(options.proc_root, "/meminfo");
  if (!ReadFile(meminfo, &text)) return absl::NotFoundError(absl::StrCat("cannot read ", meminfo));
  int64_t kib = MemInfoKib(text, "MemTotal");
  if (kib < 0) return absl::DataLossError(absl::StrCat(meminfo, " has no MemTotal line"));
  host.memory_mib = kib / 1024;

  const std::string system = absl::StrCat(options.sysfs_root, "/devices/system");
  if (ReadFile(absl::StrCat(system, "/cpu/online"), &text)) {
    absl::StatusOr<std::vector<int>> cpus = ParseCpuList(text);
    if (!cpus.ok()) return cpus.status();
    host.cpu_count = static_cast<int32_t>(cpus->size());
  } else {
    host.cpu_count = static_cast<int32_t>(std::max(1L, sysconf(_SC_NPROCESSORS_ONLN)));
  }

  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(absl::StrCat(system, "/node"), ec)) {
    std::string name = entry.path().filename().string();
    absl::string_view suffix = name;
    HostNumaNode node;
    if (!absl::ConsumePrefix(&suffix, "node") || !absl::SimpleAtoi(suffix, &node.id)) continue;
    if (ReadFile((entry.path() / "cpulist").string(), &text)) {
      absl::StatusOr<std::vector<int>> cpus = ParseCpuList(text);
      if (!cpus.ok()) return cpus.status();
      node.cpus = *std::move(cpus);
    }
    if (ReadFile((entry.path() / "meminfo").string(), &text)) {
      node.memory_mib = std::max<int64_t>(MemInfoKib(text, "MemTotal"), 0) / 1024;
    }
    host.numa_nodes.push_back(std::move(node));
  }
  std::sort(host.numa_nodes.begin(), host.numa_nodes.end(),
            [](const HostNumaNode& a, const HostNumaNode& b) { return a.id < b.id; });
  return host;
}

}  // namespace icos::devices
