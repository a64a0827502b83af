#include "cli/sim_command.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "sim/metrics.h"
#include "sim/fgd_experiment.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace icos::cli {
namespace {

namespace fs = std::filesystem;

// $ICOS_TRACES, else ../shared/data/traces beside the checkout: tried from the
// working directory and each of its parents (so it works from build dirs too).
std::string TracesDir(const SimFlags& f) {
  if (!f.traces_dir.empty()) return f.traces_dir;
  const std::string found = sim::FindTracesDir();
  return found.empty() ? "../shared/data/traces" : found;
}

struct Workload {
  std::string what;  // for the header line
  std::vector<sim::SimJob> jobs;
  std::vector<core::Node> nodes;  // from the trace (openb), else empty
};

absl::StatusOr<Workload> LoadWorkload(const SimFlags& f) {
  const std::string dir = TracesDir(f);
  std::vector<absl::string_view> parts = absl::StrSplit(f.trace, absl::MaxSplits(':', 1));
  const std::string kind(parts[0]);
  const std::string arg = parts.size() > 1 ? std::string(parts[1]) : "";
  Workload w;
  if (kind == "philly") {
    const std::string path = arg.empty() ? dir + "/philly/philly.csv" : arg;
    auto jobs = sim::LoadPhilly(path);
    if (!jobs.ok()) return jobs.status();
    w.jobs = *std::move(jobs);
    w.what = path;
  } else if (kind == "openb") {
    const std::string base = arg.empty() ? dir + "/alibaba-openb" : arg;
    auto jobs = sim::LoadOpenbPods(base + "/openb_pod_list_default.csv");
    if (!jobs.ok()) return jobs.status();
    auto nodes = sim::LoadOpenbNodes(base + "/openb_node_list_gpu_node.csv");
    if (!nodes.ok()) return nodes.status();
    w.jobs = *std::move(jobs);
    w.nodes = *std::move(nodes);
    w.what = base;
  } else if (kind == "gavel") {
    const std::string base = arg.empty() ? dir + "/gavel" : arg;
    auto tputs = sim::LoadGavelThroughputs(base + "/simulation_throughputs.json");
    if (!tputs.ok()) return tputs.status();
    auto jobs = sim::LoadGavelTraceDir(base + "/msr-seed0", *tputs);
    if (!jobs.ok()) return jobs.status();
    w.jobs = *std::move(jobs);
    w.what = base + "/msr-seed0";
  } else if (kind == "synthetic") {
    sim::SyntheticSpec spec;
    spec.seed = f.seed;
    spec.jobs = f.jobs > 0 ? static_cast<int32_t>(std::min<int64_t>(f.jobs, 10'000'000)) : 1'000;
    std::vector<absl::string_view> opts = absl::StrSplit(arg, ':', absl::SkipEmpty());
    if (!opts.empty() && !absl::SimpleAtod(opts[0], &spec.jobs_per_hour)) {
      return absl::InvalidArgumentError(absl::StrCat("--trace ", f.trace, ": rate '", opts[0], "' is not a number of jobs/hour"));
    }
    if (spec.jobs_per_hour < 0) return absl::InvalidArgumentError("--trace synthetic: the rate must be >= 0");
    if (opts.size() > 1) {
      if (opts[1] != "single") return absl::InvalidArgumentError(absl::StrCat("--trace ", f.trace, ": unknown option '", opts[1], "' (known: single)"));
      spec.single_gpu = true;
    }
    // Gavel's job types and throughputs make the synthetic jobs heterogeneous when present.
    auto tputs = sim::LoadGavelThroughputs(dir + "/gavel/simulation_throughputs.json");
    w.jobs = sim::GenerateGavelSynthetic(spec, tputs.ok() ? &*tputs : nullptr);
    w.what = absl::StrCat("synthetic (Gavel), ", spec.jobs_per_hour, " jobs/h, seed ", spec.seed,
                          spec.single_gpu ? ", 1 GPU each" : "", tputs.ok() ? ", Gavel throughputs" : ", no throughputs");
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("--trace '", f.trace, "': expected philly[:CSV], openb[:DIR], gavel[:DIR] or synthetic[:RATE[:single]]"));
  }
  if (f.jobs > 0 && static_cast<int64_t>(w.jobs.size()) > f.jobs) w.jobs.resize(f.jobs);
  return w;
}

absl::StatusOr<std::vector<core::Node>> LoadCluster(const SimFlags& f, Workload& w) {
  std::string spec = f.cluster;
  if (spec.empty()) {
    if (!w.nodes.empty()) return w.nodes;
    spec = absl::StartsWith(f.trace, "philly") ? "250x8xV100" : "36xV100,36xP100,36xK80";
  }
  if (spec == "openb" || absl::StartsWith(spec, "openb:")) {
    if (spec == "openb" && !w.nodes.empty()) return w.nodes;
    const std::string path =
        spec == "openb" ? TracesDir(f) + "/alibaba-openb/openb_node_list_gpu_node.csv" : spec.substr(6);
    return sim::LoadOpenbNodes(path);
  }
  return sim::ParseClusterSpec(spec);
}

std::string Hours(double s) { return absl::StrFormat("%.2f h", s / 3600.0); }

}  // namespace

// FGD's methodology on openb (sim/fgd_experiment.h): mean over seeds of the
// unallocated GPU share at 100% arrived, per policy.
int RunInflationExperiment(const SimFlags& f, const Workload& w, const std::vector<core::Node>& nodes,
                           const std::vector<std::string>& policies, std::ostream& out, std::ostream& err) {
  out << absl::StrFormat("FGD inflation experiment: %d nodes, %d pods, %d seeds, 1.3x GPU requests\n", nodes.size(),
                         w.jobs.size(), f.inflation_seeds);
  out << absl::StrFormat("%-10s %-28s %s\n", "policy", "unallocated GPUs at 100%", "per seed");
  for (const std::string& policy : policies) {
    double sum = 0, wall = 0;
    std::string per_seed;
    for (int s = 1; s <= f.inflation_seeds; ++s) {
      sim::InflationOptions o;
      o.seed = f.seed + static_cast<uint64_t>(s) - 1;
      auto r = sim::RunInflation(nodes, w.jobs, policy, o);
      if (!r.ok()) {
        err << "icos sim: " << r.status().message() << "\n";
        return 1;
      }
      sum += r->unallocated_pct_at_100;
      wall += r->wall_s;
      absl::StrAppend(&per_seed, absl::StrFormat("%.2f ", r->unallocated_pct_at_100));
    }
    out << absl::StrFormat("%-10s %-28s %s (%.1f s)\n", policy, absl::StrFormat("%.2f%%", sum / f.inflation_seeds),
                           per_seed, wall);
  }
  return 0;
}

int RunSim(const SimFlags& f, std::ostream& out, std::ostream& err) {
  auto w = LoadWorkload(f);
  if (!w.ok()) {
    err << "icos sim: " << w.status().message() << "\n";
    return 1;
  }
  auto nodes = LoadCluster(f, *w);
  if (!nodes.ok()) {
    err << "icos sim: " << nodes.status().message() << "\n";
    return 1;
  }
  int64_t window_first = -1, window_last = -1;
  if (!f.window.empty()) {
    std::vector<absl::string_view> ab = absl::StrSplit(f.window, ':');
    if (ab.size() != 2 || !absl::SimpleAtoi(ab[0], &window_first) || !absl::SimpleAtoi(ab[1], &window_last) ||
        window_first < 0 || window_last <= window_first) {
      err << "icos sim: --window '" << f.window << "': expected FIRST:LAST job ids with FIRST < LAST\n";
      return 1;
    }
  }
  std::vector<std::string> policies = absl::StrSplit(f.policy, ',', absl::SkipWhitespace());
  if (policies.empty()) {
    err << "icos sim: --policy names no policy\n";
    return 1;
  }
  if (f.inflation_seeds > 0) return RunInflationExperiment(f, *w, *nodes, policies, out, err);
  for (const std::string& name : policies) {
    if (auto o = sim::PolicyOptions(name); !o.ok()) {
      err << "icos sim: " << o.status().message() << "\n";
      return 1;
    }
  }
  int64_t devices = 0;
  for (const core::Node& n : *nodes) devices += static_cast<int64_t>(n.devices.size());
  if (!f.json) {
    out << "trace: " << w->what << " (" << w->jobs.size() << " jobs)\n"
        << "cluster: " << nodes->size() << " nodes, " << devices << " devices\n";
    out << absl::StrFormat("%-8s %7s %5s %10s %10s %10s %10s %10s %6s %10s %8s\n", "policy", "done", "rej", "avg JCT",
                           "median", "p99", "avg queue", "makespan", "util", "lower bd", "wall s");
  }
  if (!f.out_dir.empty()) {
    std::error_code ec;
    fs::create_directories(f.out_dir, ec);
    if (ec) {
      err << "icos sim: --out " << f.out_dir << ": " << ec.message() << "\n";
      return 1;
    }
  }
  for (const std::string& name : policies) {
    auto options = sim::PolicyOptions(name);
    if (!options.ok()) {
      err << "icos sim: " << options.status().message() << "\n";
      return 1;
    }
    sim::SimOptions o;
    o.policy = name;
    o.scheduler = *options;
    o.estimator = f.estimator;
    o.restore_delay_s = f.restore_delay_s;
    o.record_utilisation = true;
    auto r = sim::Simulate(*nodes, w->jobs, o);
    if (!r.ok()) {
      err << "icos sim: " << name << ": " << r.status().message() << "\n";
      return 1;
    }
    if (absl::Status inv = sim::CheckInvariants(w->jobs, *r); !inv.ok()) {
      err << "icos sim: " << name << ": invariant violated: " << inv.message() << "\n";
      return 1;
    }
    const sim::Summary s = sim::Summarize(*r);
    const double window_jct = window_first >= 0 ? sim::AverageJct(*r, window_first, window_last) : 0.0;
    if (f.json) {
      nlohmann::ordered_json j = sim::ToJson(s);
      j["devices"] = devices;
      if (window_first >= 0) {
        j["window"] = {window_first, window_last};
        j["window_avg_jct_s"] = window_jct;
      }
      out << j.dump() << "\n";
    } else {
      out << absl::StrFormat("%-8s %7d %5d %10s %10s %10s %10s %10s %5.1f%% %10s %8.2f\n", name, s.finished,
                             s.rejected, Hours(s.avg_jct_s), Hours(s.median_jct_s), Hours(s.p99_jct_s),
                             Hours(s.avg_queue_s), Hours(s.makespan_s), 100.0 * s.avg_utilisation,
                             Hours(s.lower_bound_jct_s), s.wall_s);
      if (window_first >= 0) {
        out << absl::StrFormat("         jobs %d..%d: avg JCT %s\n", window_first, window_last - 1, Hours(window_jct));
      }
    }
    if (!f.out_dir.empty()) {
      const std::string path = (fs::path(f.out_dir) / (name + "_utilisation.csv")).string();
      std::ofstream csv(path);
      sim::WriteUtilisationCsv(*r, csv);
      if (!csv) {
        err << "icos sim: cannot write " << path << "\n";
        return 1;
      }
    }
  }
  return 0;
}

}  // namespace icos::cli
