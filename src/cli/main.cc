// The single `icos` binary. Subcommands parse their flags here (CLI11) and
// hand plain options structs to the libraries.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "cli/demo.h"

int main(int argc, char** argv) {
  CLI::App app{"icos: one computer out of a cluster of mixed AI accelerators"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("icos 0.1.0"));

  icos::cli::DemoOptions demo;
  CLI::App* demo_cmd = app.add_subcommand(
      "demo", "Schedule a generated mixed-vendor cluster with icos::core and print every decision");
  demo_cmd->add_option("--nodes", demo.nodes, "nodes in the generated cluster")->check(CLI::Range(1, 100'000));
  demo_cmd->add_option("--jobs", demo.jobs, "pending jobs to schedule")->check(CLI::Range(0, 1'000'000));
  demo_cmd->add_option("--running", demo.running, "jobs already running")->check(CLI::Range(0, 1'000'000));
  demo_cmd->add_option("--seed", demo.seed, "random seed of the workload");
  demo_cmd->add_option("--order", demo.order, "order policy")->check(CLI::IsMember({"fifo", "priority", "drf", "las"}));
  demo_cmd->add_option("--placement", demo.placement, "node scoring")->check(CLI::IsMember({"binpack", "spread", "fgd"}));
  demo_cmd->add_option("-o,--output", demo.output, "table or json")->check(CLI::IsMember({"table", "json"}));

  CLI11_PARSE(app, argc, argv);
  if (demo_cmd->parsed()) return icos::cli::RunDemo(demo, std::cout, std::cerr);
  return 0;
}
