// The job spec's YAML reader, shared by the files that parse its parts
// (job_spec.cc: jobs and tasks; service_spec.cc: services). Internal to
// icos_api.
//
// Thread-safety: none; one Parser per document.
#ifndef ICOS_API_SPEC_PARSER_H_
#define ICOS_API_SPEC_PARSER_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "api/job_spec.h"
#include "api/quantity.h"
#include "api/spec_text.h"
#include "yaml-cpp/yaml.h"

namespace icos::api::detail {

// How much text aliases may expand the input to, as a multiple of max_bytes:
// "&a [...]" reused through "*a" many times is the YAML billion-laughs attack.
inline constexpr int64_t kExpansionFactor = 4;

template <typename E, size_t N>
absl::string_view NameOf(const std::pair<E, absl::string_view> (&table)[N], E value) {
  for (const auto& [v, name] : table) {
    if (v == value) return name;
  }
  return "unknown";
}

template <typename E, size_t N>
std::string NamesOf(const std::pair<E, absl::string_view> (&table)[N]) {
  std::vector<absl::string_view> names;
  for (const auto& entry : table) names.push_back(entry.second);
  return absl::StrJoin(names, ", ");
}

// A value in the document: where it is (for messages) and what it is.
struct Field {
  std::string path;  // "tasks[0].resources.memory"; empty for the root
  YAML::Mark mark;
  YAML::Node node;
};

struct Entry {
  std::string key;
  Field field;
};

inline std::string Where(const std::string& path, const YAML::Mark& mark) {
  const std::string& shown = path.empty() ? std::string("spec") : path;
  if (mark.is_null() || mark.line < 0) return shown;
  return absl::StrCat(shown, " (line ", mark.line + 1, ")");
}

inline absl::Status Invalid(const std::string& path, const YAML::Mark& mark, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat(Where(path, mark), ": ", message));
}

inline absl::Status Invalid(const Field& f, absl::string_view message) { return Invalid(f.path, f.mark, message); }

inline std::string Child(const std::string& path, absl::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
}

inline std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return absl::StrCat("'", Shown(node.Scalar()), "'");
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

template <size_t N>
bool IsOneOf(absl::string_view key, const absl::string_view (&known)[N]) {
  return std::find(std::begin(known), std::end(known), key) != std::end(known);
}

template <size_t N>
absl::Status UnknownField(const Entry& e, const absl::string_view (&known)[N]) {
  std::string message = absl::StrCat("unknown field; known: ", absl::StrJoin(known, ", "));
  if (e.key == "<<") absl::StrAppend(&message, " (YAML merge keys are not supported)");
  return Invalid(e.field, message);
}

// Turns one YAML document into a JobSpec, checking everything on the way.
// Not thread-safe; one Parser per document.
class Parser {
 public:
  explicit Parser(const SpecLimits& limits)
      : limits_(limits),
        budget_(static_cast<int64_t>(std::min<size_t>(limits.max_bytes, size_t{1} << 40)) * kExpansionFactor + 4096) {}

  absl::StatusOr<JobSpec> Job(const Field& root);

 private:
  absl::StatusOr<TaskSpec> Task(const Field& f, int index);
  absl::Status Restart(const Field& f, JobSpec& spec);
  // service_spec.cc: the `service:` block, and the rules that tie `kind` to
  // the other fields (`given`: the top-level fields given, by name).
  absl::Status Service(const Field& f, ServiceSpec& service);
  absl::Status Probe(const Field& f, ProbeSpec& probe);
  absl::Status Rollout(const Field& f, RolloutSpec& update);
  absl::Status Autoscale(const Field& f, AutoscaleSpec& autoscale);
  absl::Status CheckKind(JobSpec& spec, const std::map<std::string, Field>& given, const Field& root);
  absl::Status Dependencies(const Field& f, JobSpec& spec);
  absl::Status Checkpoint(const Field& f, JobSpec& spec);
  absl::Status Notify(const Field& f, JobSpec& spec);
  absl::Status Resources(const Field& f, TaskSpec& task);
  absl::StatusOr<std::vector<std::string>> Command(const Field& f);
  absl::StatusOr<std::vector<DeviceWish>> DeviceWishes(const Field& f);
  absl::StatusOr<std::map<std::string, std::string>> Env(const Field& f);
  absl::StatusOr<std::map<std::string, std::string>> NodeSelector(const Field& f);

  // The entries of a mapping, with scalar, unique keys.
  absl::StatusOr<std::vector<Entry>> Entries(const Field& f, absl::string_view expected);
  absl::StatusOr<std::string> Text(const Field& f);
  absl::StatusOr<std::string> Name(const Field& f);
  absl::StatusOr<int64_t> Integer(const Field& f, int64_t lo, int64_t hi);
  absl::StatusOr<bool> Bool(const Field& f);
  absl::StatusOr<int64_t> Duration(const Field& f);
  absl::StatusOr<int64_t> Memory(const Field& f);
  template <typename E, size_t N>
  absl::StatusOr<E> Enum(const Field& f, const std::pair<E, absl::string_view> (&table)[N], absl::string_view what);

  // Counts decoded text against the expansion budget.
  absl::Status Charge(const Field& f, size_t bytes);

  const SpecLimits& limits_;
  int64_t budget_;
};

template <typename E, size_t N>
absl::StatusOr<E> Parser::Enum(const Field& f, const std::pair<E, absl::string_view> (&table)[N],
                               absl::string_view what) {
  if (f.node.IsScalar()) {
    for (const auto& [value, name] : table) {
      if (f.node.Scalar() == name) return value;
    }
  }
  return Invalid(f, absl::StrCat(Describe(f.node), " is not ", what, "; use one of ", NamesOf(table)));
}

}  // namespace icos::api::detail

#endif  // ICOS_API_SPEC_PARSER_H_
