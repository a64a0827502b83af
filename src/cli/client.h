// Client subcommands of `icos`: submit, jobs, job, logs, cancel, wait, nodes,
// queues, queue put, token create. Each prints a table for people or JSON
// (-o json) for scripts, and turns server errors into one clear line on stderr.
#ifndef ICOS_CLI_CLIENT_H_
#define ICOS_CLI_CLIENT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"

namespace CLI {
class App;
}

namespace icos::cli {

// Where the server is and who we are. Filled from flags, then ICOS_SERVER /
// ICOS_TOKEN / ICOS_CA_CERT, then $ICOS_HOME/config.json (written by `icos
// up`; ICOS_HOME defaults to ~/.icos).
struct Connection {
  std::string server;
  std::string token;
  // The CA an https:// server's certificate must chain to; empty: the
  // system's CAs. config.json's ca_cert applies only to config.json's server.
  std::string ca_cert;
};

// Completes `c` from the environment and $ICOS_HOME/config.json (see
// Connection). FailedPrecondition when no server is known, or when a CA is
// given for a plain http:// server (the user meant TLS; tokens would cross
// the network in clear text).
absl::Status FillConnection(Connection& c);

// Adds the client subcommands to `app`; returns a callback that runs whichever
// was chosen after parsing (exit code), or -1 if none of them was.
struct ClientCommands;
ClientCommands* AddClientCommands(CLI::App& app);
int RunClientCommand(ClientCommands* commands, std::ostream& out, std::ostream& err);

// A time as `icos usage --since/--until` takes it, in Unix seconds: a
// duration back from now_s ("90s", "30m", "12h", "7d", "2w"), a UTC date
// ("2026-11-01"), RFC 3339 ("2026-11-01T08:00:00Z", "...+08:00") or Unix
// seconds. InvalidArgument naming the accepted forms otherwise.
absl::StatusOr<int64_t> ParseTimeArg(const std::string& text, int64_t now_s);

// The directory a submitted spec's relative paths (each task's workdir, and
// so a relative command such as `train.py`) are resolved against, and every
// task's workdir where the spec names none: `chdir` when given (made
// absolute against the current directory), else the spec file's own
// directory, so `icos submit examples/pytorch-ddp/job.yaml` works from
// anywhere; for a spec read from stdin ("-"), the current directory.
// InvalidArgument when `chdir` is not a directory.
absl::StatusOr<std::string> SubmitBaseDir(const std::string& file, const std::string& chdir);

// A spec's text from `file`, or from stdin for "-".
absl::StatusOr<std::string> ReadInput(const std::string& file);

// The last `n` lines of `text` (all of it when it has fewer), with their
// newlines: what `icos logs --tail N` prints first.
std::string LastLines(const std::string& text, int64_t n);

// $ICOS_HOME or ~/.icos.
std::string IcosHome();
// Writes $ICOS_HOME/config.json so later commands find the server (mode 0600).
void SaveConnection(const std::string& home, const Connection& c);

}  // namespace icos::cli

#endif  // ICOS_CLI_CLIENT_H_
