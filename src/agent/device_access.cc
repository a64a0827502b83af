#include "agent/device_access.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/sys_util.h"

namespace icos::agent {
namespace {

std::string FormatNumber(int64_t n) { return n == kAnyDeviceNumber ? "*" : absl::StrCat(n); }

bool ParseNumber(absl::string_view text, int64_t max, int64_t* out) {
  if (text == "*") {
    *out = kAnyDeviceNumber;
    return true;
  }
  return absl::SimpleAtoi(text, out) && *out >= 0 && *out <= max;
}

bool NumberMatches(int64_t rule, int64_t actual) { return rule == kAnyDeviceNumber || rule == actual; }

// "dri/renderD129" for DRM render node 128 + n.
std::string RenderNode(int32_t n) { return absl::StrCat("dri/renderD", 128 + static_cast<int64_t>(n)); }

// The card node of the PCI device that owns `render` (relative to dev_root),
// through udev's by-path links; empty when there are none or no card.
std::string DrmCardOfRender(const std::string& dev_root, const std::string& render) {
  std::error_code ec;
  const std::filesystem::path by_path = std::filesystem::path(dev_root) / "dri" / "by-path";
  const std::filesystem::path render_abs =
      std::filesystem::weakly_canonical(std::filesystem::path(dev_root) / render, ec);
  if (ec) return "";
  for (std::filesystem::directory_iterator it(by_path, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!absl::EndsWith(name, "-render")) continue;
    if (std::filesystem::weakly_canonical(it->path(), ec) != render_abs || ec) continue;
    const std::filesystem::path card = by_path / absl::StrCat(name.substr(0, name.size() - 7), "-card");
    const std::filesystem::path card_abs = std::filesystem::weakly_canonical(card, ec);
    if (ec || !std::filesystem::exists(card_abs, ec)) return "";
    return std::filesystem::relative(card_abs, std::filesystem::weakly_canonical(dev_root, ec), ec).string();
  }
  return "";
}

}  // namespace

absl::Status ValidateDeviceRule(const DeviceRule& rule) {
  if (rule.type != DeviceType::kChar && rule.type != DeviceType::kBlock) {
    return absl::InvalidArgumentError("device rule type must be 'c' or 'b'");
  }
  if (rule.major != kAnyDeviceNumber && (rule.major < 0 || rule.major > kMaxDeviceMajor)) {
    return absl::InvalidArgumentError(absl::StrCat("device major ", rule.major, " is out of range"));
  }
  if (rule.minor != kAnyDeviceNumber && (rule.minor < 0 || rule.minor > kMaxDeviceMinor)) {
    return absl::InvalidArgumentError(absl::StrCat("device minor ", rule.minor, " is out of range"));
  }
  if (rule.access == 0 || (rule.access & ~kDeviceAllAccess) != 0) {
    return absl::InvalidArgumentError("device rule access must be a non-empty subset of rwm");
  }
  return absl::OkStatus();
}

std::string FormatDeviceRule(const DeviceRule& rule) {
  std::string access;
  if (rule.access & kDeviceRead) access += 'r';
  if (rule.access & kDeviceWrite) access += 'w';
  if (rule.access & kDeviceMknod) access += 'm';
  return absl::StrCat(std::string(1, static_cast<char>(rule.type)), " ", FormatNumber(rule.major), ":",
                      FormatNumber(rule.minor), " ", access);
}

absl::StatusOr<DeviceRule> ParseDeviceRule(absl::string_view text) {
  std::vector<absl::string_view> fields = absl::StrSplit(text, ' ', absl::SkipEmpty());
  auto bad = [&] { return absl::InvalidArgumentError(absl::StrCat("bad device rule '", text, "'")); };
  if (fields.size() != 3 || fields[0].size() != 1) return bad();
  DeviceRule rule;
  if (fields[0] == "c") {
    rule.type = DeviceType::kChar;
  } else if (fields[0] == "b") {
    rule.type = DeviceType::kBlock;
  } else {
    return bad();
  }
  std::pair<absl::string_view, absl::string_view> numbers = absl::StrSplit(fields[1], absl::MaxSplits(':', 1));
  if (!ParseNumber(numbers.first, kMaxDeviceMajor, &rule.major) ||
      !ParseNumber(numbers.second, kMaxDeviceMinor, &rule.minor)) {
    return bad();
  }
  rule.access = 0;
  for (char c : fields[2]) {
    uint8_t bit = c == 'r' ? kDeviceRead : c == 'w' ? kDeviceWrite : c == 'm' ? kDeviceMknod : 0;
    if (bit == 0 || (rule.access & bit)) return bad();
    rule.access |= bit;
  }
  if (!ValidateDeviceRule(rule).ok()) return bad();
  return rule;
}

bool DeviceRulesAllow(const std::vector<DeviceRule>& rules, DeviceType type, int64_t major, int64_t minor,
                      uint8_t access) {
  return std::any_of(rules.begin(), rules.end(), [&](const DeviceRule& r) {
    return r.type == type && NumberMatches(r.major, major) && NumberMatches(r.minor, minor) &&
           (access & r.access) == access;
  });
}

std::vector<DeviceRule> DefaultDeviceRules() {
  auto c = [](int64_t major, int64_t minor) {
    return DeviceRule{.type = DeviceType::kChar, .major = major, .minor = minor, .access = kDeviceAllAccess};
  };
  return {
      c(1, 3),                  // /dev/null
      c(1, 5),                  // /dev/zero
      c(1, 7),                  // /dev/full
      c(1, 8),                  // /dev/random
      c(1, 9),                  // /dev/urandom
      c(5, 0),                  // /dev/tty
      c(5, 1),                  // /dev/console
      c(5, 2),                  // /dev/ptmx
      c(136, kAnyDeviceNumber)  // /dev/pts/*
  };
}

absl::StatusOr<std::vector<DeviceNodeSpec>> VendorDeviceNodes(absl::string_view vendor,
                                                              const std::vector<int32_t>& numbers) {
  const std::string v = absl::AsciiStrToLower(vendor);
  for (int32_t n : numbers) {
    if (n < 0) return absl::InvalidArgumentError(absl::StrCat("negative device number ", n, " for ", vendor));
  }
  std::vector<DeviceNodeSpec> out;
  auto per_device = [&](absl::string_view prefix) {
    for (int32_t n : numbers) out.push_back({.path = absl::StrCat(prefix, n)});
  };
  auto shared = [&](absl::string_view path, bool optional) {
    out.push_back({.path = std::string(path), .optional = optional});
  };
  if (v == "nvidia") {
    per_device("nvidia");
    shared("nvidiactl", false);
    shared("nvidia-uvm", false);
    shared("nvidia-uvm-tools", true);
    shared("nvidia-modeset", true);
  } else if (v == "ascend") {
    per_device("davinci");
    shared("davinci_manager", false);
    shared("devmm_svm", false);
    shared("hisi_hdc", false);
  } else if (v == "cambricon") {
    per_device("cambricon_dev");
    for (int32_t n : numbers) out.push_back({.path = absl::StrCat("cambricon_ipcm", n), .optional = true});
    shared("cambricon_ctl", true);
  } else if (v == "amd" || v == "hygon") {
    for (int32_t n : numbers) out.push_back({.path = RenderNode(n)});
    for (int32_t n : numbers) out.push_back({.path = RenderNode(n), .optional = true, .drm_card_of_render = true});
    shared("kfd", false);
    if (v == "hygon") shared("mkfd", true);
  } else if (v == "kunlunxin") {
    per_device("xpu");
    shared("xpuctrl", false);
  } else if (v == "moorethreads") {
    per_device("mtgpu.");
    for (int32_t n : numbers) out.push_back({.path = RenderNode(n), .optional = true});
    for (int32_t n : numbers) out.push_back({.path = RenderNode(n), .optional = true, .drm_card_of_render = true});
  } else {
    return absl::InvalidArgumentError(absl::StrCat("no device node table for vendor '", vendor, "'"));
  }
  if (numbers.empty()) out.clear();
  return out;
}

absl::StatusOr<std::vector<DeviceNodeSpec>> DeviceNodeSpecsFromPaths(const std::vector<std::string>& paths) {
  std::vector<DeviceNodeSpec> out;
  for (const std::string& path : paths) {
    if (!absl::StartsWith(path, "/dev/") || path.size() <= 5 || absl::StrContains(path, "/../") ||
        absl::EndsWith(path, "/..")) {
      return absl::InvalidArgumentError(absl::StrCat("device node '", path, "' is not under /dev"));
    }
    const std::string relative = path.substr(5);
    const bool optional = relative == "nvidia-uvm-tools" || relative == "nvidia-modeset" ||
                          relative == "cambricon_ctl" || relative == "mkfd" ||
                          absl::StartsWith(relative, "cambricon_ipcm");
    out.push_back({.path = relative, .optional = optional});
  }
  return out;
}

absl::StatusOr<ResolvedDeviceNodes> ResolveDeviceNodes(const std::vector<DeviceNodeSpec>& specs,
                                                       const std::string& dev_root) {
  ResolvedDeviceNodes out;
  std::vector<std::string> missing_required;
  for (const DeviceNodeSpec& spec : specs) {
    std::string relative = spec.path;
    if (spec.drm_card_of_render) {
      relative = DrmCardOfRender(dev_root, spec.path);
      if (relative.empty()) {
        out.missing.push_back(absl::StrCat(dev_root, "/", spec.path, " (its DRM card node, via dri/by-path)"));
        continue;
      }
    }
    const std::string path = absl::StrCat(dev_root, "/", relative);
    struct stat st;
    if (stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) return ErrnoError(errno, absl::StrCat("stat ", path));
      (spec.optional ? out.missing : missing_required).push_back(path);
      continue;
    }
    DeviceRule rule;
    if (S_ISCHR(st.st_mode)) {
      rule.type = DeviceType::kChar;
    } else if (S_ISBLK(st.st_mode)) {
      rule.type = DeviceType::kBlock;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(path, " is not a device node"));
    }
    rule.major = major(st.st_rdev);
    rule.minor = minor(st.st_rdev);
    rule.access = kDeviceReadWrite;
    if (std::find(out.nodes.begin(), out.nodes.end(), path) != out.nodes.end()) continue;
    out.rules.push_back(rule);
    out.nodes.push_back(path);
  }
  if (!missing_required.empty()) {
    return absl::NotFoundError(absl::StrCat("device nodes missing: ", absl::StrJoin(missing_required, ", "),
                                            " (driver not loaded, or devices renumbered?)"));
  }
  return out;
}

absl::StatusOr<DeviceAllowList> TaskDeviceAllowList(const std::vector<TaskDevices>& devices,
                                                    const std::string& dev_root) {
  DeviceAllowList out;
  out.rules = DefaultDeviceRules();
  for (const TaskDevices& task_devices : devices) {
    absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes(task_devices.vendor, task_devices.numbers);
    if (!specs.ok()) return specs.status();
    absl::StatusOr<ResolvedDeviceNodes> resolved = ResolveDeviceNodes(*specs, dev_root);
    if (!resolved.ok()) return resolved.status();
    for (const DeviceRule& rule : resolved->rules) {
      if (std::find(out.rules.begin(), out.rules.end(), rule) == out.rules.end()) out.rules.push_back(rule);
    }
    for (const std::string& path : resolved->missing) {
      out.warnings.push_back(absl::StrCat("optional ", task_devices.vendor, " device node not present: ", path));
    }
  }
  return out;
}

}  // namespace icos::agent
