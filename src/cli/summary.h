// `icos summary`, as Slurm's sinfo: devices by vendor/model (total, in use,
// free to schedule, out of service), nodes by state, and what each queue
// waits for and holds. Built from the API's node and queue listings.
#ifndef ICOS_CLI_SUMMARY_H_
#define ICOS_CLI_SUMMARY_H_

#include <string>

#include "nlohmann/json.hpp"

namespace icos::cli {

// The table, from GET /api/v1/nodes and GET /api/v1/queues replies. A device
// is out of service on a node that is not Ready, drained or unhealthy, or
// when it is drained or unhealthy itself; free is what no task holds of the
// rest (a shared device's unheld share counts as free).
std::string ClusterSummary(const nlohmann::json& nodes, const nlohmann::json& queues);

}  // namespace icos::cli

#endif  // ICOS_CLI_SUMMARY_H_
