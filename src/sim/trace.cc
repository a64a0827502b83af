#include "sim/trace.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/unit_interval.h"
#include "nlohmann/json.hpp"

namespace icos::sim {
namespace {

// Reads `in` line by line, numbering from 1, stripping a trailing '\r' and
// skipping blank lines; `row` returns a non-OK status to stop.
template <typename F>
absl::Status ForEachLine(std::istream& in, F&& row) {
  std::string line;
  int64_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::Status s = row(number, absl::string_view(line));
    if (!s.ok()) return s;
  }
  if (in.bad()) return absl::DataLossError("read error");
  return absl::OkStatus();
}

absl::Status LineError(absl::string_view source, int64_t line, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ":", line, ": ", what));
}

// Splits a row and checks the column count.
absl::StatusOr<std::vector<absl::string_view>> Fields(absl::string_view line, char sep, size_t want) {
  std::vector<absl::string_view> f = absl::StrSplit(line, sep);
  if (f.size() != want) {
    return absl::InvalidArgumentError(absl::StrCat("expected ", want, " fields, got ", f.size()));
  }
  for (auto& x : f) x = absl::StripAsciiWhitespace(x);
  return f;
}

absl::StatusOr<double> Number(absl::string_view field, absl::string_view column) {
  double v = 0;
  if (!absl::SimpleAtod(field, &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat("bad ", column, " '", field, "' (expected a number)"));
  }
  return v;
}

absl::StatusOr<int64_t> Integer(absl::string_view field, absl::string_view column, int64_t min) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(field, &v) || v < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad ", column, " '", field, "' (expected an integer >= ", min, ")"));
  }
  return v;
}

// Header check: the first non-blank line must name the expected columns.
absl::Status CheckHeader(absl::string_view line, absl::string_view want) {
  if (absl::StripAsciiWhitespace(line) != want) {
    return absl::InvalidArgumentError(absl::StrCat("header '", line, "' is not '", want, "'"));
  }
  return absl::OkStatus();
}

std::string Upper(absl::string_view s) { return absl::AsciiStrToUpper(s); }

template <typename T, typename P>
absl::StatusOr<T> LoadFile(const std::string& path, P&& parse) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  return parse(in, path);
}

}  // namespace

void FinalizeTrace(std::vector<SimJob>& jobs, bool rebase) {
  std::stable_sort(jobs.begin(), jobs.end(),
                   [](const SimJob& a, const SimJob& b) { return a.arrival_s < b.arrival_s; });
  const double first = jobs.empty() ? 0.0 : jobs.front().arrival_s;
  for (size_t i = 0; i < jobs.size(); ++i) {
    jobs[i].id = static_cast<int64_t>(i);
    if (rebase) jobs[i].arrival_s -= first;
  }
}

// --- Philly ---------------------------------------------------------------------------

absl::StatusOr<std::vector<SimJob>> ParsePhilly(std::istream& in, absl::string_view source) {
  std::vector<SimJob> jobs;
  bool header = true;
  absl::Status s = ForEachLine(in, [&](int64_t n, absl::string_view line) -> absl::Status {
    if (header) {
      header = false;
      absl::Status h = CheckHeader(line, "timestamp,duration,num_gpus,gpu_time,cluster");
      return h.ok() ? h : LineError(source, n, h.message());
    }
    auto f = Fields(line, ',', 5);
    if (!f.ok()) return LineError(source, n, f.status().message());
    absl::Time t;
    std::string err;
    if (!absl::ParseTime("%Y-%m-%d %H:%M:%S", (*f)[0], absl::UTCTimeZone(), &t, &err)) {
      return LineError(source, n, absl::StrCat("bad timestamp '", (*f)[0], "' (expected YYYY-MM-DD HH:MM:SS)"));
    }
    auto duration = Number((*f)[1], "duration");
    if (!duration.ok()) return LineError(source, n, duration.status().message());
    if (*duration < 0) return LineError(source, n, absl::StrCat("negative duration ", *duration));
    auto gpus = Integer((*f)[2], "num_gpus", 1);
    if (!gpus.ok()) return LineError(source, n, gpus.status().message());
    if (*gpus > 1'000'000) return LineError(source, n, absl::StrCat("num_gpus ", *gpus, " is implausible"));
    SimJob j;
    j.arrival_s = static_cast<double>(absl::ToUnixSeconds(t));
    j.submit_unix_s = j.arrival_s;  // arrival_s is rebased below; this is not
    j.duration_s = *duration;
    j.gpus = static_cast<int32_t>(*gpus);
    j.queue = std::string((*f)[4]);
    jobs.push_back(std::move(j));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (header) return absl::InvalidArgumentError(absl::StrCat(source, ": empty file (no header)"));
  FinalizeTrace(jobs, /*rebase=*/true);
  return jobs;
}

absl::StatusOr<std::vector<SimJob>> LoadPhilly(const std::string& path) {
  return LoadFile<std::vector<SimJob>>(path, [](std::istream& in, const std::string& p) { return ParsePhilly(in, p); });
}

// --- openb ----------------------------------------------------------------------------

absl::StatusOr<std::vector<core::Node>> ParseOpenbNodes(std::istream& in, absl::string_view source) {
  std::vector<core::Node> nodes;
  bool header = true;
  absl::Status s = ForEachLine(in, [&](int64_t n, absl::string_view line) -> absl::Status {
    if (header) {
      header = false;
      absl::Status h = CheckHeader(line, "sn,cpu_milli,memory_mib,gpu,model");
      return h.ok() ? h : LineError(source, n, h.message());
    }
    auto f = Fields(line, ',', 5);
    if (!f.ok()) return LineError(source, n, f.status().message());
    auto cpu = Integer((*f)[1], "cpu_milli", 0);
    if (!cpu.ok()) return LineError(source, n, cpu.status().message());
    auto mem = Integer((*f)[2], "memory_mib", 0);
    if (!mem.ok()) return LineError(source, n, mem.status().message());
    auto gpus = Integer((*f)[3], "gpu", 0);
    if (!gpus.ok()) return LineError(source, n, gpus.status().message());
    if (*gpus > 1024) return LineError(source, n, absl::StrCat("gpu ", *gpus, " is implausible"));
    if ((*f)[0].empty()) return LineError(source, n, "empty node name (sn)");
    if (*gpus > 0 && (*f)[4].empty()) return LineError(source, n, "a node with GPUs needs a model");
    core::Node node;
    node.name = std::string((*f)[0]);
    node.cpu_milli = *cpu;
    node.memory_mib = *mem;
    for (int64_t d = 0; d < *gpus; ++d) {
      core::Device dev;
      dev.vendor = "nvidia";
      dev.model = std::string((*f)[4]);
      dev.memory_mib = 16'384;
      dev.island = 0;
      node.devices.push_back(dev);
    }
    node.network_path = {absl::StrCat("rack-", nodes.size() / 32)};
    nodes.push_back(std::move(node));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (header) return absl::InvalidArgumentError(absl::StrCat(source, ": empty file (no header)"));
  return nodes;
}

absl::StatusOr<std::vector<core::Node>> LoadOpenbNodes(const std::string& path) {
  return LoadFile<std::vector<core::Node>>(
      path, [](std::istream& in, const std::string& p) { return ParseOpenbNodes(in, p); });
}

namespace {

// The columns a pod list may carry, in the order of FGD's full lists.
constexpr const char* kOpenbPodColumns[] = {"name",          "cpu_milli",     "memory_mib",    "num_gpu",
                                            "gpu_milli",     "gpu_spec",      "qos",           "pod_phase",
                                            "creation_time", "deletion_time", "scheduled_time"};

}  // namespace

absl::StatusOr<std::vector<SimJob>> ParseOpenbPods(std::istream& in, absl::string_view source,
                                                   std::vector<std::string>* defaulted) {
  std::vector<SimJob> jobs;
  bool header = true;
  // Each known column's index in this file's rows; -1: absent (defaulted).
  std::map<std::string, int> at;
  size_t width = 0;
  absl::Status s = ForEachLine(in, [&](int64_t n, absl::string_view line) -> absl::Status {
    if (header) {
      header = false;
      std::vector<std::string> names = absl::StrSplit(line, ',');
      width = names.size();
      for (const char* c : kOpenbPodColumns) at[c] = -1;
      for (size_t i = 0; i < names.size(); ++i) {
        const std::string name(absl::StripAsciiWhitespace(names[i]));
        auto it = at.find(name);
        if (it == at.end()) {
          return LineError(
              source, n,
              absl::StrCat("unknown column '", name, "' (known: ", absl::StrJoin(kOpenbPodColumns, ","), ")"));
        }
        if (it->second >= 0) return LineError(source, n, absl::StrCat("column '", name, "' appears twice"));
        it->second = static_cast<int>(i);
      }
      if (at["num_gpu"] < 0 && at["gpu_milli"] < 0 && at["cpu_milli"] < 0) {
        return LineError(source, n, "header names none of num_gpu, gpu_milli, cpu_milli: not a pod list");
      }
      if (defaulted != nullptr) {
        defaulted->clear();
        for (const char* c : kOpenbPodColumns) {
          if (at[c] < 0 && std::string(c) != "pod_phase") defaulted->push_back(c);
        }
      }
      return absl::OkStatus();
    }
    auto f = Fields(line, ',', width);
    if (!f.ok()) return LineError(source, n, f.status().message());
    const auto& v = *f;
    auto field = [&](const char* column) { return at[column] >= 0 ? v[at[column]] : absl::string_view(); };
    // An integer column: its value, or `absent` where the file lacks it.
    auto integer = [&](const char* column, int64_t absent) -> absl::StatusOr<int64_t> {
      return at[column] >= 0 ? Integer(field(column), column, 0) : absent;
    };
    auto cpu = integer("cpu_milli", 0);
    if (!cpu.ok()) return LineError(source, n, cpu.status().message());
    auto mem = integer("memory_mib", 0);
    if (!mem.ok()) return LineError(source, n, mem.status().message());
    auto gpus = integer("num_gpu", 0);
    if (!gpus.ok()) return LineError(source, n, gpus.status().message());
    if (*gpus > 1024) return LineError(source, n, absl::StrCat("num_gpu ", *gpus, " is implausible"));
    auto milli = integer("gpu_milli", *gpus > 0 ? 1000 : 0);  // without the column: whole GPUs
    if (!milli.ok()) return LineError(source, n, milli.status().message());
    if (*milli > 1000) return LineError(source, n, absl::StrCat("gpu_milli ", *milli, " is more than one GPU (1000)"));
    if (*gpus > 1 && *milli != 1000) {
      return LineError(
          source, n, absl::StrCat("num_gpu ", *gpus, " with gpu_milli ", *milli, ": only a single GPU may be shared"));
    }
    if (*gpus > 0 && *milli == 0) return LineError(source, n, "num_gpu > 0 needs gpu_milli > 0");
    auto created = integer("creation_time", 0);
    if (!created.ok()) return LineError(source, n, created.status().message());
    auto deleted = integer("deletion_time", *created);  // without the column: no duration
    if (!deleted.ok()) return LineError(source, n, deleted.status().message());
    int64_t began = *created;
    if (!field("scheduled_time").empty()) {
      auto scheduled = Integer(field("scheduled_time"), "scheduled_time", 0);
      if (!scheduled.ok()) return LineError(source, n, scheduled.status().message());
      began = std::max(began, *scheduled);
    }
    if (*deleted < began) {
      return LineError(source, n, absl::StrCat("deletion_time ", *deleted, " is before the pod started (", began, ")"));
    }
    SimJob j;
    j.name = at["name"] >= 0 ? std::string(field("name")) : absl::StrCat("pod-", jobs.size());
    j.arrival_s = static_cast<double>(*created);
    j.duration_s = static_cast<double>(*deleted - began);
    j.gpus = static_cast<int32_t>(*gpus);
    j.gpu_milli = *gpus > 0 ? static_cast<int32_t>(*milli) : 0;
    j.cpu_milli = *cpu;
    j.memory_mib = *mem;
    for (absl::string_view m : absl::StrSplit(field("gpu_spec"), '|', absl::SkipWhitespace())) {
      j.models.emplace_back(absl::StripAsciiWhitespace(m));
    }
    j.queue = std::string(field("qos"));
    jobs.push_back(std::move(j));
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (header) return absl::InvalidArgumentError(absl::StrCat(source, ": empty file (no header)"));
  FinalizeTrace(jobs, /*rebase=*/true);
  return jobs;
}

absl::StatusOr<std::vector<SimJob>> LoadOpenbPods(const std::string& path, std::vector<std::string>* defaulted) {
  return LoadFile<std::vector<SimJob>>(
      path, [defaulted](std::istream& in, const std::string& p) { return ParseOpenbPods(in, p, defaulted); });
}

// --- Gavel ----------------------------------------------------------------------------

absl::StatusOr<GavelThroughputs> ParseGavelThroughputs(absl::string_view json, absl::string_view source) {
  nlohmann::json doc;
  try {
    doc = nlohmann::json::parse(json);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not JSON: ", e.what()));
  }
  if (!doc.is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": expected an object of GPU types"));
  static const std::regex kKey(R"(^\('(.+)', *([0-9]+)\)$)");
  GavelThroughputs out;
  for (const char* gpu : {"k80", "p100", "v100"}) {
    auto it = doc.find(gpu);
    if (it == doc.end()) continue;
    if (!it->is_object()) return absl::InvalidArgumentError(absl::StrCat(source, ": '", gpu, "' is not an object"));
    auto& table = out[Upper(gpu)];
    for (auto& [key, value] : it->items()) {
      std::smatch m;
      if (!std::regex_match(key, m, kKey)) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": ", gpu, ": key \"", key, "\" is not ('<job type>', <scale>)"));
      }
      auto null = value.is_object() ? value.find("null") : value.end();
      if (!value.is_object() || null == value.end() || !null->is_number()) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", gpu, ": \"", key, "\" lacks a numeric \"null\""));
      }
      int32_t scale = 0;
      if (!absl::SimpleAtoi(m[2].str(), &scale) || scale < 1) {
        return absl::InvalidArgumentError(absl::StrCat(source, ": ", gpu, ": bad scale in \"", key, "\""));
      }
      out[Upper(gpu)][{m[1].str(), scale}] = null->get<double>();
    }
    if (table.empty()) out.erase(Upper(gpu));
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": none of k80, p100, v100 present"));
  return out;
}

absl::StatusOr<GavelThroughputs> LoadGavelThroughputs(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseGavelThroughputs(ss.str(), path);
}

namespace {

// Throughput of (type, scale) on every model that measured it above zero. The
// table stops at scale 8 and lacks multi-GPU rows for some types (A3C, CycleGAN,
// Recommendation) that Gavel's msr traces still run at 2..32 GPUs: those take the
// largest measured scale below and scale it linearly (an optimistic estimate).
std::map<std::string, double> ThroughputsOf(const GavelThroughputs& tputs, const std::string& type, int32_t scale) {
  std::map<std::string, double> out;
  for (const auto& [model, table] : tputs) {
    auto it = table.upper_bound({type, scale});
    if (it == table.begin()) continue;
    --it;
    if (it->first.first != type || it->second <= 0) continue;
    out[model] = it->second * scale / it->first.second;
  }
  return out;
}

// The GPU model Gavel's generator states run times on.
constexpr char kGavelReferenceModel[] = "V100";

double MaxOf(const std::map<std::string, double>& m) {
  double best = 0;
  for (const auto& [k, v] : m) best = std::max(best, v);
  return best;
}

}  // namespace

absl::Status ParseGavelTrace(std::istream& in, absl::string_view source, const std::string& queue,
                             const GavelThroughputs& tputs, std::vector<SimJob>& jobs) {
  return ForEachLine(in, [&](int64_t n, absl::string_view line) -> absl::Status {
    auto f = Fields(line, '\t', 7);
    if (!f.ok()) return LineError(source, n, f.status().message());
    const auto& v = *f;
    auto steps = Number(v[4], "total_steps");
    if (!steps.ok()) return LineError(source, n, steps.status().message());
    if (*steps <= 0) return LineError(source, n, absl::StrCat("total_steps ", v[4], " must be positive"));
    auto arrival = Number(v[5], "arrival_s");
    if (!arrival.ok()) return LineError(source, n, arrival.status().message());
    if (*arrival < 0) return LineError(source, n, absl::StrCat("negative arrival_s ", v[5]));
    auto scale = Integer(v[6], "scale_factor", 1);
    if (!scale.ok()) return LineError(source, n, scale.status().message());
    if (*scale > 1024) return LineError(source, n, absl::StrCat("scale_factor ", *scale, " is implausible"));
    SimJob j;
    j.name = std::string(v[0]);
    j.throughput = ThroughputsOf(tputs, j.name, static_cast<int32_t>(*scale));
    if (j.throughput.empty()) {
      return LineError(source, n, absl::StrCat("no throughput for ('", j.name, "', ", *scale, ") on any GPU type"));
    }
    for (const auto& [model, t] : j.throughput) j.models.push_back(model);
    j.arrival_s = *arrival;
    j.duration_s = *steps / MaxOf(j.throughput);
    j.gpus = static_cast<int32_t>(*scale);
    j.queue = queue;
    jobs.push_back(std::move(j));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<SimJob>> LoadGavelTraceDir(const std::string& dir, const GavelThroughputs& tputs) {
  std::error_code ec;
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".trace") files.push_back(e.path());
  }
  if (ec) return absl::NotFoundError(absl::StrCat(dir, ": ", ec.message()));
  if (files.empty()) return absl::NotFoundError(absl::StrCat(dir, ": no *.trace files"));
  std::sort(files.begin(), files.end());
  std::vector<SimJob> jobs;
  for (const auto& p : files) {
    std::ifstream in(p);
    if (!in) return absl::NotFoundError(absl::StrCat(p.string(), ": cannot open"));
    absl::Status s = ParseGavelTrace(in, p.string(), p.stem().string(), tputs, jobs);
    if (!s.ok()) return s;
  }
  FinalizeTrace(jobs, /*rebase=*/false);
  return jobs;
}

// --- synthetic ------------------------------------------------------------------------

std::vector<SimJob> GenerateGavelSynthetic(const SyntheticSpec& spec, const GavelThroughputs* tputs) {
  std::mt19937_64 rng(spec.seed);
  // Our own uniform in [0, 1): the standard distributions differ between libraries.
  auto unit = [&rng] { return UnitFromBits(rng()); };
  // Job types measured at each scale, for drawing a type.
  std::map<int32_t, std::vector<std::string>> types_at;
  if (tputs != nullptr) {
    std::map<std::pair<std::string, int32_t>, bool> seen;
    for (const auto& [model, table] : *tputs) {
      for (const auto& [key, t] : table) {
        if (t > 0 && !seen[key]) {
          seen[key] = true;
          types_at[key.second].push_back(key.first);
        }
      }
    }
  }
  std::vector<SimJob> jobs;
  jobs.reserve(std::max(0, spec.jobs));
  double t = 0;
  for (int32_t i = 0; i < spec.jobs; ++i) {
    SimJob j;
    if (spec.jobs_per_hour > 0 && i > 0) t += -std::log(1.0 - unit()) * 3600.0 / spec.jobs_per_hour;
    j.arrival_s = t;
    const double exponent = unit() < 0.8 ? 1.5 + 1.5 * unit() : 3.0 + unit();
    const double run_time_s = 60.0 * std::pow(10.0, exponent);
    j.duration_s = run_time_s;
    const double g = unit();
    j.gpus = spec.single_gpu ? 1 : g < 0.70 ? 1 : g < 0.80 ? 2 : g < 0.95 ? 4 : 8;
    auto types = types_at.find(j.gpus);
    if (types != types_at.end() && !types->second.empty()) {
      j.name = types->second[rng() % types->second.size()];
      j.throughput = ThroughputsOf(*tputs, j.name, j.gpus);
      for (const auto& [model, tp] : j.throughput) j.models.push_back(model);
      // Gavel draws the run time on its reference type, the V100 (its job has
      // run_time x V100 throughput steps), so a job faster elsewhere
      // (Recommendation runs ~2x faster on a P100) is shorter on its best type.
      if (auto ref = j.throughput.find(kGavelReferenceModel); ref != j.throughput.end()) {
        j.duration_s = run_time_s * ref->second / MaxOf(j.throughput);
      }
    }
    jobs.push_back(std::move(j));
  }
  FinalizeTrace(jobs, /*rebase=*/false);
  return jobs;
}

std::string FindTracesDir() {
  if (const char* env = std::getenv("ICOS_TRACES"); env != nullptr && *env != '\0') return env;
  namespace fs = std::filesystem;
  std::error_code ec;
  for (fs::path p = fs::current_path(ec); !p.empty(); p = p.parent_path()) {
    const fs::path candidate = p / ".." / "shared" / "data" / "traces";
    if (fs::exists(candidate, ec)) return candidate.lexically_normal().string();
    if (p == p.parent_path()) break;
  }
  return "";
}

}  // namespace icos::sim
