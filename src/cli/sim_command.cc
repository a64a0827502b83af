#include "cli/sim_command.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "sim/fgd_experiment.h"
#include "sim/metrics.h"
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
    // A directory of FGD's lists (the default pod list and the GPU nodes),
    // or one pod list of any of FGD's workload variants beside its nodes.
    std::string pods = arg.empty() ? dir + "/alibaba-openb" : arg;
    std::filesystem::path base(pods);
    if (std::filesystem::is_directory(base)) {
      pods = (base / "openb_pod_list_default.csv").string();
    } else {
      base = base.has_parent_path() ? base.parent_path() : std::filesystem::current_path();
    }
    std::vector<std::string> defaulted;
    auto jobs = sim::LoadOpenbPods(pods, &defaulted);
    if (!jobs.ok()) return jobs.status();
    const bool timed = std::find(defaulted.begin(), defaulted.end(), "creation_time") == defaulted.end() &&
                       std::find(defaulted.begin(), defaulted.end(), "deletion_time") == defaulted.end();
    if (!timed && f.inflation_seeds <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(pods,
                       ": has no creation_time and deletion_time, which a replay needs; FGD's inflation experiment "
                       "(--inflation-seeds N) does not"));
    }
    auto nodes = sim::LoadOpenbNodes((base / "openb_node_list_gpu_node.csv").string());
    if (!nodes.ok()) return nodes.status();
    w.jobs = *std::move(jobs);
    w.nodes = *std::move(nodes);
    w.what = defaulted.empty()
                 ? pods
                 : absl::StrCat(pods, " (columns not in the file, defaulted: ", absl::StrJoin(defaulted, ", "), ")");
  } else if (kind == "gavel") {
    // Gavel's trace directory (msr-seed0 under it by default), or one
    // directory of *.trace files (another seed's); the throughputs beside
    // the traces or one level up, as Gavel's repository keeps them.
    const std::string base = arg.empty() ? dir + "/gavel" : arg;
    const bool traces_here = [&] {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(base, ec)) {
        if (e.path().extension() == ".trace") return true;
      }
      return false;
    }();
    const std::string traces = traces_here ? base : base + "/msr-seed0";
    std::string tputs_path = base + "/simulation_throughputs.json";
    if (traces_here && !std::filesystem::exists(tputs_path)) {
      tputs_path = std::filesystem::path(base).parent_path().string() + "/simulation_throughputs.json";
    }
    auto tputs = sim::LoadGavelThroughputs(tputs_path);
    if (!tputs.ok()) return tputs.status();
    auto jobs = sim::LoadGavelTraceDir(traces, *tputs);
    if (!jobs.ok()) return jobs.status();
    w.jobs = *std::move(jobs);
    w.what = traces;
  } else if (kind == "synthetic") {
    sim::SyntheticSpec spec;
    spec.seed = f.seed;
    spec.jobs = f.jobs > 0 ? static_cast<int32_t>(std::min<int64_t>(f.jobs, 10'000'000)) : 1'000;
    std::vector<absl::string_view> opts = absl::StrSplit(arg, ':', absl::SkipEmpty());
    if (!opts.empty() && !absl::SimpleAtod(opts[0], &spec.jobs_per_hour)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--trace ", f.trace, ": rate '", opts[0], "' is not a number of jobs/hour"));
    }
    if (spec.jobs_per_hour < 0) return absl::InvalidArgumentError("--trace synthetic: the rate must be >= 0");
    bool uniform = false;
    for (size_t i = 1; i < opts.size(); ++i) {
      if (opts[i] == "single") {
        spec.single_gpu = true;
      } else if (opts[i] == "uniform") {
        uniform = true;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--trace ", f.trace, ": unknown option '", opts[i], "' (known: single, uniform)"));
      }
    }
    // Gavel's job types and throughputs make the synthetic jobs
    // heterogeneous. Without them every job runs as fast on every device,
    // and every policy lands on the lower bound: a run that looks like a
    // win. So they are required unless asked away (uniform).
    sim::GavelThroughputs tputs;
    const std::string tputs_path = dir + "/gavel/simulation_throughputs.json";
    if (!uniform) {
      auto loaded = sim::LoadGavelThroughputs(tputs_path);
      if (!loaded.ok()) {
        return absl::NotFoundError(
            absl::StrCat("--trace synthetic needs Gavel's throughputs: ", loaded.status().message(),
                         "; set --traces (or ICOS_TRACES) to the trace directory, or use "
                         "synthetic:RATE:uniform for jobs as fast on every device"));
      }
      tputs = *std::move(loaded);
    }
    w.jobs = sim::GenerateGavelSynthetic(spec, uniform ? nullptr : &tputs);
    w.what = absl::StrCat("synthetic (Gavel), ", spec.jobs_per_hour, " jobs/h, seed ", spec.seed,
                          spec.single_gpu ? ", 1 GPU each" : "",
                          uniform ? ", uniform (no throughputs)" : absl::StrCat(", throughputs from ", tputs_path));
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--trace '", f.trace,
        "': expected philly[:CSV], openb[:DIR|PODS.csv], gavel[:DIR] or synthetic[:RATE[:single][:uniform]]"));
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

absl::Status WriteFile(const fs::path& path, const std::function<void(std::ostream&)>& body) {
  std::ofstream file(path);
  if (file) body(file);
  file.close();
  if (!file) return absl::UnavailableError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// gnuplot string literal: single quotes, with embedded ones doubled.
std::string GpQuote(absl::string_view s) { return absl::StrCat("'", absl::StrReplaceAll(s, {{"'", "''"}}), "'"); }

// Writes `dir/name.gp` and runs gnuplot on it in `dir` when gnuplot is
// installed; plots are a convenience, so a missing gnuplot is reported, not fatal.
void RunGnuplot(const std::string& dir, const std::string& name, const std::string& script, std::ostream& out) {
  const fs::path gp = fs::path(dir) / (name + ".gp");
  if (absl::Status s = WriteFile(gp, [&](std::ostream& o) { o << script; }); !s.ok()) {
    out << "plots: " << s.message() << "\n";
    return;
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    out << "plots: gnuplot is not installed; " << gp.string() << " draws " << name << ".svg\n";
    return;
  }
  const std::string cmd = absl::StrCat("cd ", GpQuote(dir), " && gnuplot ", GpQuote(name + ".gp"), " 2>&1");
  if (std::system(cmd.c_str()) != 0) {
    out << "plots: gnuplot failed on " << gp.string() << "\n";
    return;
  }
  out << "plot: " << (fs::path(dir) / (name + ".svg")).string() << "\n";
}

std::string GpHeader(const std::string& name, const std::string& title) {
  return absl::StrCat("set terminal svg size 900,520 dynamic font 'sans,12' background '#ffffff'\n", "set output ",
                      GpQuote(name + ".svg"), "\nset datafile separator ','\nset key outside right top\n",
                      "set grid\nset title ", GpQuote(title), " noenhanced\n");
}

// JCT CDF and utilisation over time, one line per policy.
void PlotSimRun(const std::string& dir, const std::string& what, const std::vector<std::string>& policies,
                std::ostream& out) {
  std::string cdf = GpHeader("jct_cdf", absl::StrCat("JCT distribution: ", what));
  absl::StrAppend(&cdf, "set logscale x\nset xlabel 'job completion time (hours)'\nset ylabel 'share of jobs'\n",
                  "set yrange [0:1]\nplot ");
  std::string util = GpHeader("utilisation", absl::StrCat("Allocated devices: ", what));
  absl::StrAppend(&util,
                  "set xlabel 'time (days)'\nset ylabel 'allocated share of devices'\nset yrange [0:1.05]\nplot ");
  for (size_t i = 0; i < policies.size(); ++i) {
    const std::string& p = policies[i];
    const char* sep = i + 1 < policies.size() ? ", \\\n  " : "\n";
    absl::StrAppend(&cdf, GpQuote(p + "_jct_cdf.csv"), " every ::1 using ($1/3600):2 with lines lw 2 title ",
                    GpQuote(p), sep);
    absl::StrAppend(&util, GpQuote(p + "_utilisation_binned.csv"),
                    " every ::1 using ($1/86400):2 with lines lw 1.5 title ", GpQuote(p), sep);
  }
  RunGnuplot(dir, "jct_cdf", cdf, out);
  RunGnuplot(dir, "utilisation", util, out);
}

// FGD's figures: unallocated GPU share and fragmentation rate against arrived
// GPU demand, one line per policy.
void PlotInflation(const std::string& dir, const std::vector<std::string>& policies, std::ostream& out) {
  for (const auto& [name, column, label] :
       {std::tuple<std::string, int, std::string>{"unallocated", 2, "unallocated GPUs (% of capacity)"},
        {"frag_rate", 3, "fragmentation rate (% of free GPU)"}}) {
    std::string gp = GpHeader(name, absl::StrCat("openb, FGD inflation: ", label));
    absl::StrAppend(&gp, "set xlabel 'arrived GPU demand (% of capacity)'\nset ylabel ", GpQuote(label),
                    "\nset xrange [0:130]\nplot ");
    for (size_t i = 0; i < policies.size(); ++i) {
      absl::StrAppend(&gp, GpQuote(policies[i] + "_inflation.csv"), " every ::1 using 1:", column,
                      " with linespoints lw 2 title ", GpQuote(policies[i]),
                      i + 1 < policies.size() ? ", \\\n  " : "\n");
    }
    RunGnuplot(dir, name, gp, out);
  }
}

}  // namespace

// FGD's methodology on openb (sim/fgd_experiment.h): mean over seeds of the
// unallocated GPU share at 100% arrived and of the fragmentation rate at 90%,
// per policy; with --out, the mean curves as CSV and SVG.
int RunInflationExperiment(const SimFlags& f, const Workload& w, const std::vector<core::Node>& nodes,
                           const std::vector<std::string>& policies, std::ostream& out, std::ostream& err) {
  int64_t gpus = 0;
  for (const core::Node& n : nodes) gpus += static_cast<int64_t>(n.devices.size());
  if (!f.json) {
    out << absl::StrFormat("FGD inflation experiment: %d nodes, %d GPUs, %d pods%s, %d seeds, 1.3x GPU requests\n",
                           nodes.size(), gpus, w.jobs.size(), f.gpu_pods_only ? " (GPU pods only)" : "",
                           f.inflation_seeds);
    out << absl::StrFormat("%-10s %-26s %-22s %s\n", "policy", "unallocated GPUs at 100%", "frag rate at 90%",
                           "unallocated per seed");
  }
  std::vector<nlohmann::ordered_json> summaries;
  for (const std::string& policy : policies) {
    double sum = 0, frag = 0, wall = 0;
    std::string per_seed;
    nlohmann::ordered_json seeds = nlohmann::ordered_json::array();
    std::vector<sim::InflationPoint> mean_curve;
    // Seeds are independent runs on shared read-only inputs: one thread each,
    // as many at a time as there are cores.
    std::vector<absl::StatusOr<sim::InflationResult>> results(f.inflation_seeds, absl::UnknownError("not run"));
    const int width = std::max(1u, std::thread::hardware_concurrency());
    for (int first = 0; first < f.inflation_seeds; first += width) {
      std::vector<std::thread> threads;
      for (int s = first; s < std::min(f.inflation_seeds, first + width); ++s) {
        threads.emplace_back([&, s] {
          sim::InflationOptions o;
          o.seed = f.seed + static_cast<uint64_t>(s);
          o.cpu_pods = !f.gpu_pods_only;
          results[s] = sim::RunInflation(nodes, w.jobs, policy, o);
        });
      }
      for (std::thread& t : threads) t.join();
    }
    for (auto& r : results) {
      if (!r.ok()) {
        err << "icos sim: " << r.status().message() << "\n";
        return 1;
      }
      sum += r->unallocated_pct_at_100;
      frag += r->frag_rate_pct_at_90;
      wall += r->wall_s;  // CPU-seconds in all; the threads overlap
      absl::StrAppend(&per_seed, absl::StrFormat("%.2f ", r->unallocated_pct_at_100));
      seeds.push_back(r->unallocated_pct_at_100);
      if (mean_curve.size() < r->curve.size()) mean_curve.resize(r->curve.size());
      for (size_t i = 0; i < r->curve.size(); ++i) {
        mean_curve[i].arrived_pct = r->curve[i].arrived_pct;
        mean_curve[i].unallocated_pct += r->curve[i].unallocated_pct / f.inflation_seeds;
        mean_curve[i].frag_rate_pct += r->curve[i].frag_rate_pct / f.inflation_seeds;
      }
    }
    const double n = f.inflation_seeds;
    if (f.json) {
      out << nlohmann::ordered_json{{"policy", policy},
                                    {"seeds", f.inflation_seeds},
                                    {"unallocated_pct_at_100", sum / n},
                                    {"frag_rate_pct_at_90", frag / n},
                                    {"unallocated_pct_at_100_per_seed", seeds},
                                    {"wall_s", wall}}
                 .dump()
          << "\n";
    } else {
      out << absl::StrFormat("%-10s %-26s %-22s %s(%.1f s)\n", policy, absl::StrFormat("%.2f%%", sum / n),
                             absl::StrFormat("%.1f%%", frag / n), per_seed, wall);
    }
    if (!f.out_dir.empty()) {
      absl::Status st = WriteFile(fs::path(f.out_dir) / (policy + "_inflation.csv"), [&](std::ostream& o) {
        o << "arrived_pct,unallocated_pct,frag_rate_pct\n";
        for (const auto& p : mean_curve)
          o << p.arrived_pct << ',' << p.unallocated_pct << ',' << p.frag_rate_pct << '\n';
      });
      if (!st.ok()) {
        err << "icos sim: " << st.message() << "\n";
        return 1;
      }
    }
  }
  if (!f.out_dir.empty()) PlotInflation(f.out_dir, policies, out);
  return 0;
}

int RunSim(const SimFlags& f, std::ostream& out, std::ostream& err) {
  double device_mtbf_h = 0;
  if (f.device_mtbf == "llama3") {
    device_mtbf_h = sim::kLlama3DeviceMtbfH;
  } else if (!f.device_mtbf.empty() && (!absl::SimpleAtod(f.device_mtbf, &device_mtbf_h) || device_mtbf_h <= 0 ||
                                        !std::isfinite(device_mtbf_h))) {
    err << "icos sim: --device-mtbf '" << f.device_mtbf << "': expected device-hours > 0, or llama3\n";
    return 1;
  }
  // Repair times and racks (sim::SimOptions::repair_times, rack_nodes).
  auto repair_times = sim::SimOptions::RepairTimes::kFixed;
  double repair_sigma = 1.0;
  if (f.repair_times == "exp") {
    repair_times = sim::SimOptions::RepairTimes::kExponential;
  } else if (f.repair_times == "lognormal" || absl::StartsWith(f.repair_times, "lognormal:")) {
    repair_times = sim::SimOptions::RepairTimes::kLogNormal;
    if (f.repair_times != "lognormal" &&
        (!absl::SimpleAtod(f.repair_times.substr(10), &repair_sigma) || !(repair_sigma > 0 && repair_sigma <= 5))) {
      err << "icos sim: --repair-times '" << f.repair_times << "': the sigma after lognormal: must be in (0, 5]\n";
      return 1;
    }
  } else if (f.repair_times != "fixed") {
    err << "icos sim: --repair-times '" << f.repair_times << "': expected fixed, exp or lognormal[:SIGMA]\n";
    return 1;
  }
  int32_t rack_nodes = 0;
  double rack_mtbf_h = 0;
  if (!f.rack.empty()) {
    const std::vector<std::string> parts = absl::StrSplit(f.rack, ':');
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &rack_nodes) || rack_nodes < 1 ||
        !absl::SimpleAtod(parts[1], &rack_mtbf_h) || !(rack_mtbf_h > 0) || !std::isfinite(rack_mtbf_h)) {
      err << "icos sim: --rack '" << f.rack << "': expected NODES:MTBF_HOURS, e.g. 4:8760 (racks of 4 nodes, each "
          << "failing once a year)\n";
      return 1;
    }
  }
  const bool faults = device_mtbf_h > 0 || rack_nodes > 0;
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
  if (!f.out_dir.empty()) {
    std::error_code ec;
    fs::create_directories(f.out_dir, ec);
    if (ec) {
      err << "icos sim: --out " << f.out_dir << ": " << ec.message() << "\n";
      return 1;
    }
  }
  if (f.inflation_seeds > 0) return RunInflationExperiment(f, *w, *nodes, policies, out, err);
  for (const std::string& name : policies) {
    if (auto o = core::PolicyPreset(name); !o.ok()) {
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
  std::vector<nlohmann::ordered_json> summaries;
  for (const std::string& name : policies) {
    auto options = core::PolicyPreset(name);
    if (!options.ok()) {
      err << "icos sim: " << options.status().message() << "\n";
      return 1;
    }
    sim::SimOptions o;
    o.policy = name;
    o.scheduler = *options;
    o.estimator = sim::EstimatorFor(name, f.estimator);
    o.restore_delay_s = f.restore_delay_s;
    o.checkpoint_interval_s = f.checkpoint_interval_s;
    o.min_run_s = f.min_run_s;
    o.max_interruptions_per_hour = f.max_interruptions_per_hour;
    o.usage_half_life_s = f.usage_half_life_s;
    o.device_mtbf_h = device_mtbf_h;
    o.repair_s = f.repair_s;
    o.repair_times = repair_times;
    o.repair_sigma = repair_sigma;
    o.rack_nodes = rack_nodes;
    o.rack_mtbf_h = rack_mtbf_h;
    o.fault_seed = f.fault_seed;
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
      j["restore_delay_s"] = f.restore_delay_s;
      j["checkpoint_interval_s"] = f.checkpoint_interval_s;
      j["min_run_s"] = f.min_run_s;
      j["max_interruptions_per_hour"] = f.max_interruptions_per_hour;
      j["usage_half_life_s"] = f.usage_half_life_s;
      if (faults) {
        j["device_mtbf_h"] = device_mtbf_h;
        j["repair_s"] = f.repair_s;
        j["repair_times"] = f.repair_times;
        if (rack_nodes > 0) {
          j["rack_nodes"] = rack_nodes;
          j["rack_mtbf_h"] = rack_mtbf_h;
        }
        j["fault_seed"] = f.fault_seed;
      }
      if (window_first >= 0) {
        j["window"] = {window_first, window_last};
        j["window_avg_jct_s"] = window_jct;
      }
      out << j.dump() << "\n";
    } else {
      out << absl::StrFormat("%-8s %7d %5d %10s %10s %10s %10s %10s %5.1f%% %10s %8.2f\n", name, s.finished, s.rejected,
                             Hours(s.avg_jct_s), Hours(s.median_jct_s), Hours(s.p99_jct_s), Hours(s.avg_queue_s),
                             Hours(s.makespan_s), 100.0 * s.avg_utilisation, Hours(s.lower_bound_jct_s), s.wall_s);
      if (window_first >= 0) {
        out << absl::StrFormat("         jobs %d..%d: avg JCT %s\n", window_first, window_last - 1, Hours(window_jct));
      }
      out << absl::StrFormat("         JCT / lower bound %.2f, finish-time fairness mean %.2f worst %.1f\n",
                             s.lower_bound_jct_s > 0 ? s.avg_jct_s / s.lower_bound_jct_s : 0.0, s.ftf_mean,
                             s.ftf_worst);
      out << absl::StrFormat("         %d preemptions, %d moves; GPU-hours lost %.1f of %.1f used (%.2f%%)\n",
                             s.preemptions, s.migrations, s.gpu_hours_lost, s.gpu_hours_used,
                             s.gpu_hours_used > 0 ? 100.0 * s.gpu_hours_lost / s.gpu_hours_used : 0.0);
      if (faults) {
        out << absl::StrFormat(
            "         %d node failures (%d whole racks) ended %d runs; they lost %.1f GPU-hours (%.2f%% of used); "
            "nodes were down %.0f node-hours\n",
            s.faults, s.rack_faults, s.fault_stops, s.gpu_hours_lost_to_faults,
            s.gpu_hours_used > 0 ? 100.0 * s.gpu_hours_lost_to_faults / s.gpu_hours_used : 0.0, s.node_hours_down);
      }
      if (s.estimator == "learned") {
        out << absl::StrFormat(
            "         learned estimates: median abs error %s, %.1f%% within 2x (%.1f%% after burst revisions), %d "
            "models (%.1f s training)\n",
            Hours(s.est_median_abs_error_s), 100.0 * s.est_within_2x, 100.0 * s.est_final_within_2x, s.models_trained,
            s.train_wall_s);
      }
    }
    if (!f.out_dir.empty()) {
      nlohmann::ordered_json j = sim::ToJson(s);
      j["devices"] = devices;
      if (window_first >= 0) j["window_avg_jct_s"] = window_jct;
      summaries.push_back(std::move(j));
    }
    if (!f.out_dir.empty()) {
      absl::Status w = WriteFile(fs::path(f.out_dir) / (name + "_utilisation.csv"),
                                 [&](std::ostream& o) { sim::WriteUtilisationCsv(*r, o); });
      if (w.ok()) {
        w = WriteFile(fs::path(f.out_dir) / (name + "_jct_cdf.csv"),
                      [&](std::ostream& o) { sim::WriteJctCdfCsv(*r, o); });
      }
      if (w.ok()) {
        w = WriteFile(fs::path(f.out_dir) / (name + "_jobs.csv"), [&](std::ostream& o) { sim::WriteJobsCsv(*r, o); });
      }
      if (w.ok()) {
        w = WriteFile(fs::path(f.out_dir) / (name + "_utilisation_binned.csv"),
                      [&](std::ostream& o) { sim::WriteUtilisationBinnedCsv(*r, o); });
      }
      if (!w.ok()) {
        err << "icos sim: " << w.message() << "\n";
        return 1;
      }
    }
  }
  if (!f.out_dir.empty()) {
    absl::Status written = WriteFile(fs::path(f.out_dir) / "summary.json",
                                     [&](std::ostream& o) { o << nlohmann::ordered_json(summaries).dump(2) << "\n"; });
    if (!written.ok()) {
      err << "icos sim: " << written.message() << "\n";
      return 1;
    }
    PlotSimRun(f.out_dir, w->what, policies, out);
  }
  return 0;
}

}  // namespace icos::cli
