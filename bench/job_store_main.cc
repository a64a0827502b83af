// Makes a controller's SQLite store holding many jobs, for bench/list_jobs.sh
// (issue #19: `icos jobs` on 1,000,000 jobs answers in 100 ms or less).
//
// Usage: icos_job_store DB JOBS ACTIVE
//   JOBS jobs of 100 users, 20 queues and 50 names, submitted a second apart;
//   all but ACTIVE ended (Succeeded, every 10th Failed). The active ones are
//   spread over the whole history, the oldest first (a job pending for days
//   is the worst case for "active jobs, newest first"); a tenth of them run.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "store/sqlite_state_store.h"

namespace {

using icos::store::JobRecord;
using icos::store::JobState;

int Fail(const std::string& what) {
  std::fprintf(stderr, "icos_job_store: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t jobs = 0, active = 0;
  if (argc != 4 || !absl::SimpleAtoi(argv[2], &jobs) || !absl::SimpleAtoi(argv[3], &active) || jobs < 1 || active < 0 ||
      active > jobs) {
    return Fail("usage: icos_job_store DB JOBS ACTIVE");
  }
  auto store = icos::store::SqliteStateStore::Open({.path = argv[1]});
  if (!store.ok()) return Fail(std::string(store.status().message()));
  constexpr int64_t kBatch = 10'000;
  const int64_t t0 = 1'780'000'000'000;  // the first submit, Unix ms
  // Every (jobs / active)-th job stays active.
  const int64_t stride = active > 0 ? jobs / active : jobs + 1;
  int64_t made = 0, left_active = active;
  while (made < jobs) {
    const int64_t n = std::min(kBatch, jobs - made);
    // InsertJobs takes a group as one transaction; it is an array's way in,
    // so each batch is made an array and then taken apart below.
    std::vector<JobRecord> batch(n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = made + i;
      JobRecord& r = batch[i];
      r.name = absl::StrCat("train-", k % 50);
      r.user = absl::StrCat("user", k % 100);
      r.queue = absl::StrCat("q", k % 20);
      r.spec_json = R"({"name":"x","tasks":[{"command":["true"]}]})";
      r.submit_ms = t0 + k * 1000;
      r.starts_array = i == 0;
      r.array_id = i == 0 ? 0 : icos::store::kNewArray;
      r.array_index = static_cast<int32_t>(i);
    }
    if (absl::Status s = (*store)->InsertJobs(&batch); !s.ok()) return Fail(std::string(s.message()));
    icos::store::WriteBatch update;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = made + i;
      JobRecord r = batch[i];
      r.array_id = 0;
      r.array_index = -1;
      r.starts_array = false;
      if (left_active > 0 && k % stride == 0) {
        --left_active;
        r.state = left_active % 10 == 0 ? JobState::kRunning : JobState::kPending;
        if (r.state == JobState::kRunning) r.start_ms = r.submit_ms + 5'000;
      } else {
        r.state = k % 10 == 9 ? JobState::kFailed : JobState::kSucceeded;
        r.start_ms = r.submit_ms + 5'000;
        r.end_ms = r.start_ms + 60'000;
      }
      update.jobs.push_back(std::move(r));
    }
    if (absl::Status s = (*store)->Apply(std::move(update)); !s.ok()) return Fail(std::string(s.message()));
    made += n;
  }
  std::printf("icos_job_store: %lld jobs (%lld active) in %s\n", static_cast<long long>(jobs),
              static_cast<long long>(active), argv[1]);
  return 0;
}
