// The Prometheus text formatter: escaping, value formatting, counters and
// cumulative histogram buckets with +Inf, _sum and _count.
#include "controller/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "controller/http_server.h"

namespace icos::controller::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsFormatTest, EscapesBackslashQuoteAndNewlineInLabelValues) {
  EXPECT_EQ(EscapeLabelValue(R"(a\b"c)"
                             "\n"
                             "d"),
            R"(a\\b\"c\nd)");
  ExpositionWriter w;
  w.Sample("icos_x", {{"node", "we\"ird\\node\n"}}, 1);
  EXPECT_EQ(w.text(), "icos_x{node=\"we\\\"ird\\\\node\\n\"} 1\n");
}

TEST(MetricsFormatTest, EscapesHelpButNotQuotes) {
  ExpositionWriter w;
  w.Family("icos_x", "gauge", "a \"quoted\" \\ help\nline");
  EXPECT_EQ(w.text(), "# HELP icos_x a \"quoted\" \\\\ help\\nline\n# TYPE icos_x gauge\n");
}

TEST(MetricsFormatTest, FormatsValuesShortestAndSpecials) {
  EXPECT_EQ(FormatValue(0.1), "0.1");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatValue(std::nan("")), "NaN");
}

TEST(MetricsCounterTest, SumsByLabelValuesAndIgnoresNegativeIncrements) {
  CounterFamily c("icos_things_total", "Things.", {"kind"});
  c.Inc({"a"});
  c.Inc({"a"}, 2.5);
  c.Inc({"b"});
  c.Inc({"b"}, -5);  // a counter never decreases
  EXPECT_EQ(c.Value({"a"}), 3.5);
  ExpositionWriter w;
  c.Render(w);
  EXPECT_EQ(w.text(),
            "# HELP icos_things_total Things.\n# TYPE icos_things_total counter\n"
            "icos_things_total{kind=\"a\"} 3.5\nicos_things_total{kind=\"b\"} 1\n");
}

TEST(MetricsCounterTest, UnlabelledCounterIsShownAtZeroBeforeItsFirstEvent) {
  CounterFamily c("icos_things_total", "Things.", {});
  ExpositionWriter w;
  c.Render(w);
  EXPECT_THAT(w.text(), HasSubstr("\nicos_things_total 0\n"));
}

TEST(MetricsHistogramTest, BucketsAreCumulativeWithInfSumAndCount) {
  HistogramFamily h("icos_wait_seconds", "Waits.", {"route"}, {0.1, 1, 10});
  // Observations 0.05, 0.1 (upper bound inclusive), 0.5, 20:
  //   le=0.1 -> 2, le=1 -> 3, le=10 -> 3, +Inf -> 4; sum = 20.65.
  for (double v : {0.05, 0.1, 0.5, 20.0}) h.Observe({"/x"}, v);
  ExpositionWriter w;
  h.Render(w);
  EXPECT_EQ(w.text(),
            "# HELP icos_wait_seconds Waits.\n# TYPE icos_wait_seconds histogram\n"
            "icos_wait_seconds_bucket{route=\"/x\",le=\"0.1\"} 2\n"
            "icos_wait_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"
            "icos_wait_seconds_bucket{route=\"/x\",le=\"10\"} 3\n"
            "icos_wait_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"
            "icos_wait_seconds_sum{route=\"/x\"} 20.65\n"
            "icos_wait_seconds_count{route=\"/x\"} 4\n");
  EXPECT_EQ(h.Count({"/x"}), 4u);
}

TEST(MetricsHistogramTest, UnlabelledHistogramRendersEmptyBucketsBeforeObservations) {
  HistogramFamily h("icos_pass_seconds", "Passes.", {}, {1});
  ExpositionWriter w;
  h.Render(w);
  EXPECT_THAT(w.text(), HasSubstr("icos_pass_seconds_bucket{le=\"+Inf\"} 0\nicos_pass_seconds_sum 0\n"
                                  "icos_pass_seconds_count 0\n"));
}

TEST(RouteLabelTest, RegexGroupsBecomePlaceholders) {
  EXPECT_EQ(RouteLabel(R"(/api/v1/jobs/(\d+)/logs)"), "/api/v1/jobs/:id/logs");
  EXPECT_EQ(RouteLabel(R"(/api/v1/nodes/([^/]+)/(drain|resume))"), "/api/v1/nodes/:name/:drain|resume");
  EXPECT_EQ(RouteLabel("/metrics"), "/metrics");
}

}  // namespace
}  // namespace icos::controller::metrics
