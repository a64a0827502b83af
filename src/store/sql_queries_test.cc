#include "store/sql_queries.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::store::sql {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Writes each bound parameter as text, as a backend's binder receives them.
struct RecordingBinder {
  std::vector<std::string> bound;
  RecordingBinder& Int(int64_t v) { return Add(absl::StrCat("int:", v)); }
  RecordingBinder& Text(absl::string_view v) { return Add(absl::StrCat("text:", v)); }
  RecordingBinder& Bool(bool v) { return Add(v ? "bool:true" : "bool:false"); }
  RecordingBinder& Null() { return Add("null"); }
  RecordingBinder& Add(std::string s) {
    bound.push_back(std::move(s));
    return *this;
  }
};

std::vector<std::string> Bound(const Query& q) {
  RecordingBinder b;
  q.BindTo(b);
  return b.bound;
}

// SQLite's text with its placeholders written as PostgreSQL's.
std::string AsPostgres(std::string sqlite) {
  for (size_t i = 0; i + 1 < sqlite.size(); ++i) {
    if (sqlite[i] == '?' && absl::ascii_isdigit(sqlite[i + 1])) sqlite[i] = '$';
  }
  return sqlite;
}

TEST(SqlQueryTest, NumbersPlaceholdersInEachDialectsStyle) {
  for (Dialect d : {Dialect::kSqlite, Dialect::kPostgres}) {
    Query q(d);
    q.Sql("a = ").Int(7).Sql(" AND b = ").Text("x").Sql(" AND c = ").Bool(true).Sql(" LIMIT ").Null();
    const char* p = d == Dialect::kSqlite ? "?" : "$";
    EXPECT_EQ(q.sql(), absl::StrCat("a = ", p, "1 AND b = ", p, "2 AND c = ", p, "3 LIMIT ", p, "4"));
    EXPECT_THAT(Bound(q), ElementsAre("int:7", "text:x", "bool:true", "null"));
  }
}

TEST(SqlQueryTest, ValuesListsAPlaceholderPerValue) {
  Query q(Dialect::kPostgres);
  q.Sql("x = ").Int(1).Sql(" AND y IN ").Values([](auto& list) { list.Text("a").Int(2).Bool(false); });
  EXPECT_EQ(q.sql(), "x = $1 AND y IN ($2, $3, $4)");
  EXPECT_THAT(Bound(q), ElementsAre("int:1", "text:a", "int:2", "bool:false"));
}

TEST(SqlQueryTest, BindIntNamesOneValueTwice) {
  Query q(Dialect::kSqlite);
  const std::string since = q.BindInt(10);
  q.Sql("a >= ", since, " AND b >= ", since, " AND c = ").Int(3);
  EXPECT_EQ(q.sql(), "a >= ?1 AND b >= ?1 AND c = ?2");
  EXPECT_THAT(Bound(q), ElementsAre("int:10", "int:3"));
}

TEST(SqlQueryTest, NoLimitIsMinusOneForSqliteAndNullForPostgres) {
  EXPECT_THAT(Bound(Query(Dialect::kSqlite).Limit(0)), ElementsAre("int:-1"));
  EXPECT_THAT(Bound(Query(Dialect::kPostgres).Limit(0)), ElementsAre("null"));
  EXPECT_THAT(Bound(Query(Dialect::kPostgres).Limit(5)), ElementsAre("int:5"));
}

TEST(SqlQueriesTest, ListJobsFiltersInTextOrder) {
  JobQuery query{.states = {JobState::kRunning, JobState::kPending},
                 .user = "ann",
                 .queue = "gpu",
                 .array_id = 4,
                 .array_index = 2,
                 .after_id = 10,
                 .before_id = 90,
                 .newest_first = true,
                 .limit = 5};
  absl::StatusOr<Query> q = ListJobs(Dialect::kPostgres, query);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_THAT(q->sql(), HasSubstr(" FROM jobs WHERE id > $1 AND state IN ($2, $3) AND \"user\" = $4 AND queue = $5 "
                                  "AND array_id = $6 AND array_index = $7 AND id < $8 ORDER BY id DESC LIMIT $9"));
  EXPECT_THAT(Bound(*q), ElementsAre("int:10", "text:Pending", "text:Running", "text:ann", "text:gpu", "int:4", "int:2",
                                     "int:90", "int:5"));
}

TEST(SqlQueriesTest, ListJobsAndEventsRefuseBadArguments) {
  EXPECT_EQ(ListJobs(Dialect::kSqlite, JobQuery{.limit = -1}).status().code(), absl::StatusCode::kInvalidArgument);
  absl::StatusOr<Query> events = ListEvents(Dialect::kSqlite, -2, 0, 0);
  EXPECT_EQ(events.status().message(), "list events: job id -2 is negative");
}

TEST(SqlQueriesTest, UpsertsUpdateEveryColumnButTheKey) {
  const std::string sql = UpsertTask(Dialect::kSqlite, TaskRecord{}).sql();
  EXPECT_THAT(sql,
              HasSubstr("VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) ON CONFLICT(job_id, grp, replica, "
                        "attempt) DO UPDATE SET node = excluded.node, placement_json = excluded.placement_json, "
                        "state = excluded.state, exit_code = excluded.exit_code, reason = excluded.reason, "
                        "start_ms = excluded.start_ms, end_ms = excluded.end_ms, max_rss_kib = excluded.max_rss_kib"));
  EXPECT_THAT(UpsertToken(Dialect::kSqlite, TokenRecord{}).sql(),
              HasSubstr("DO UPDATE SET name = excluded.name, role = excluded.role, \"user\" = excluded.\"user\""));
  EXPECT_THAT(UpsertToken(Dialect::kSqlite, TokenRecord{}).sql(), Not(HasSubstr("token_hash = excluded")));
}

// The point of sql_queries.h: one text, the dialects differing in placeholders
// only (and in what only one of them has: FOR SHARE, LIMIT's "no limit").
TEST(SqlQueriesTest, DialectsDifferOnlyInPlaceholders) {
  const JobQuery all{.states = {JobState::kFailed}, .user = "u", .name = "n", .limit = 7};
  auto both = [](auto make) { return std::pair{make(Dialect::kSqlite), make(Dialect::kPostgres)}; };
  const std::vector<std::pair<Query, Query>> queries = {
      both([&](Dialect d) { return *ListJobs(d, all); }),
      both([](Dialect d) { return *ListEvents(d, 3, 1, 10); }),
      both([](Dialect d) { return CountJobs(d, 1, 2); }),
      both([](Dialect d) { return InsertJob(d, JobRecord{}); }),
      both([](Dialect d) { return UpdateJob(d, JobRecord{}); }),
      both([](Dialect d) { return UpsertUsage(d, UsageRecord{}); }),
      both([](Dialect d) { return PutIdempotencyKey(d, "u", "k", 1, "digest", 2); }),
      both([](Dialect d) { return TakeLeader(d, LeaderRecord{}); }),
      both([](Dialect d) { return ReadLeader(d, /*lock_row=*/false); }),
  };
  for (const auto& [lite, pg] : queries) {
    EXPECT_EQ(AsPostgres(lite.sql()), pg.sql());
    EXPECT_EQ(Bound(lite), Bound(pg)) << pg.sql();
  }
  EXPECT_EQ(ReadLeader(Dialect::kPostgres, /*lock_row=*/true).sql(),
            ReadLeader(Dialect::kSqlite, /*lock_row=*/true).sql() + " FOR SHARE");
}

TEST(SqlMigrationTest, EveryWordIsSpelledOutInBothDialects) {
  for (int32_t v = 1; v <= kMigrationCount; ++v) {
    const std::string lite = Migration(Dialect::kSqlite, v);
    const std::string pg = Migration(Dialect::kPostgres, v);
    EXPECT_THAT(lite, Not(HasSubstr("{"))) << "v" << v;
    EXPECT_THAT(pg, Not(HasSubstr("{"))) << "v" << v;
    EXPECT_THAT(lite, Not(HasSubstr("BIGINT"))) << "v" << v;  // not a STRICT table's type
    EXPECT_THAT(lite, Not(HasSubstr("COLLATE"))) << "v" << v;
    EXPECT_THAT(pg, Not(HasSubstr("STRICT"))) << "v" << v;
  }
  EXPECT_THAT(Migration(Dialect::kSqlite, 1), HasSubstr("id INTEGER PRIMARY KEY AUTOINCREMENT,"));
  EXPECT_THAT(Migration(Dialect::kPostgres, 1), HasSubstr("id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"));
}

// Released steps never change: a database made by an older icos must have the
// schema a new one makes. These fingerprints (FNV-1a of each step's text)
// break when a released step, or a word's expansion it uses, is edited; a
// schema change is a new step instead.
uint64_t Fnv1a(absl::string_view text) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return h;
}

TEST(SqlMigrationTest, ReleasedStepsAreUnchanged) {
  // Each checked when made: a database migrated by these steps has the very
  // schema the backends' own step lists of before made (sqlite pragmas; pg_dump).
  const uint64_t kSqlite[] = {354150322833427114ull,  12044986664920626526ull, 17692518529023507480ull,
                              4139882382026549384ull, 17175332878619929075ull, 18268264042859753162ull,
                              4044973717571337649ull, 2466589937391901301ull,  12088726261851719750ull};
  const uint64_t kPostgres[] = {11498582747828697503ull, 13995059998948425238ull, 17601391859167872497ull,
                                18049152106441887377ull, 2945888898490035121ull,  11039737630622240784ull,
                                3814000657907859786ull,  15160992900044335820ull, 3625920721795150325ull};
  for (int32_t v = 1; v <= kMigrationCount; ++v) {
    EXPECT_EQ(Fnv1a(Migration(Dialect::kSqlite, v)), kSqlite[v - 1]) << "SQLite v" << v;
    EXPECT_EQ(Fnv1a(Migration(Dialect::kPostgres, v)), kPostgres[v - 1]) << "PostgreSQL v" << v;
  }
}

}  // namespace
}  // namespace icos::store::sql
