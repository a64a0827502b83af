// libFuzzer target for the job spec parser (src/api/job_spec.h).
//
// Properties checked on every input, aborting on a violation:
//   - ParseJobSpec returns OK or InvalidArgument with a message; it never
//     crashes, hangs or throws (the sanitizers catch memory errors);
//   - a spec that parses survives JobSpecToJson and parses back equal, and its
//     JSON is stable (printing the re-parsed spec gives the same bytes);
//   - ToCoreJob accepts every spec that parses.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/job_spec.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& input, const std::string& detail) {
  std::fprintf(stderr, "job_spec_fuzz: %s\n--- input ---\n%s\n--- detail ---\n%s\n", what, input.c_str(),
               detail.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using icos::api::JobSpec;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<JobSpec> spec = icos::api::ParseJobSpec(text);
  if (!spec.ok()) {
    if (spec.status().code() != absl::StatusCode::kInvalidArgument || spec.status().message().empty()) {
      Fail("error is not InvalidArgument with a message", text, spec.status().ToString());
    }
    return 0;
  }
  const std::string json = icos::api::JobSpecToJson(*spec);
  // JSON can be longer than the YAML it came from (quotes, escapes), so the
  // re-parse gets room for it; everything else stays at the defaults.
  icos::api::SpecLimits roomy;
  if (json.size() > roomy.max_bytes) roomy.max_bytes = json.size();
  absl::StatusOr<JobSpec> again = icos::api::ParseJobSpec(json, roomy);
  if (!again.ok()) Fail("canonical JSON does not parse", text, again.status().ToString() + "\n" + json);
  if (!(*again == *spec)) Fail("round trip changed the spec", text, json + "\n" + icos::api::JobSpecToJson(*again));
  if (icos::api::JobSpecToJson(*again) != json) Fail("canonical JSON is not stable", text, json);
  const icos::core::Job job = icos::api::ToCoreJob(*spec, icos::JobId(1), "fuzz", 0);
  if (job.groups.size() != spec->tasks.size()) Fail("ToCoreJob lost task groups", text, json);
  return 0;
}
