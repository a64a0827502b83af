// The job spec's `notify:` section and webhook URLs (issue #19).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/job_spec.h"

namespace icos::api {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<JobSpec> Parse(const std::string& notify) {
  return ParseJobSpec("tasks: [{command: [python3, train.py]}]\nnotify: " + notify + "\n");
}

TEST(NotifySpecTest, AUrlAloneAsksForEveryEvent) {
  absl::StatusOr<JobSpec> spec = Parse("http://hooks.example:8080/icos?team=a");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->notify.url, "http://hooks.example:8080/icos?team=a");
  EXPECT_EQ(spec->notify.on, kNotifyAll);
  EXPECT_EQ(ParseJobSpec("tasks: [{command: [x]}]")->notify.url, "");
}

TEST(NotifySpecTest, ChosenEventsSurviveTheStore) {
  absl::StatusOr<JobSpec> spec = Parse("{url: 'https://h/x', on: [fail, preempt]}");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->notify.on, kNotifyFail | kNotifyPreempt);
  absl::StatusOr<JobSpec> again = ParseJobSpec(JobSpecToJson(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->notify, spec->notify);
}

TEST(NotifySpecTest, ArrayTasksIsOffUnlessAskedAndSurvivesTheStore) {
  EXPECT_FALSE(Parse("http://h/x")->notify.array_tasks);
  EXPECT_EQ(JobSpecToJson(*Parse("http://h/x")).find("array_tasks"), std::string::npos);  // older specs' JSON unchanged
  absl::StatusOr<JobSpec> spec = Parse("{url: 'http://h/x', array_tasks: true}");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->notify.array_tasks);
  EXPECT_TRUE(ParseJobSpec(JobSpecToJson(*spec))->notify.array_tasks);
  EXPECT_THAT(Parse("{url: 'http://h/x', array_tasks: sometimes}").status().message(), HasSubstr("notify.array_tasks"));
}

TEST(NotifySpecTest, MistakesAreNamed) {
  EXPECT_THAT(Parse("{on: [end]}").status().message(), HasSubstr("needs a url"));
  EXPECT_THAT(Parse("{url: 'http://h/', on: [finish]}").status().message(), HasSubstr("notify.on[0]"));
  EXPECT_THAT(Parse("{url: 'http://h/', on: []}").status().message(), HasSubstr("start, end, fail, preempt"));
  EXPECT_THAT(Parse("{url: 'http://h/', every: 1}").status().message(), HasSubstr("known: url, on, array_tasks"));
  EXPECT_THAT(Parse("file:///etc/passwd").status().message(), HasSubstr("only http:// and https://"));
}

TEST(WebhookUrlTest, TakesAUrlApart) {
  absl::StatusOr<WebhookUrl> u = ParseWebhookUrl("HTTPS://Hooks.Example/a/b?c=d#frag");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->Origin(), "https://hooks.example:443");
  EXPECT_EQ(u->target, "/a/b?c=d");
  u = ParseWebhookUrl("http://10.0.0.5:8080");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->Origin(), "http://10.0.0.5:8080");
  EXPECT_EQ(u->target, "/");
  u = ParseWebhookUrl("http://[::1]:9000/x");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->host, "[::1]");
  EXPECT_EQ(u->port, 9000);
}

TEST(WebhookUrlTest, RefusesWhatCouldMisleadTheClientOrLeak) {
  EXPECT_THAT(ParseWebhookUrl("gopher://h/").status().message(), HasSubstr("only http"));
  EXPECT_THAT(ParseWebhookUrl("http://user:pw@h/").status().message(), HasSubstr("user or password"));
  EXPECT_THAT(ParseWebhookUrl("http://a,b/").status().message(), HasSubstr("commas"));
  EXPECT_THAT(ParseWebhookUrl("http://h/a b").status().message(), HasSubstr("spaces"));
  EXPECT_THAT(ParseWebhookUrl("http://h:0/").status().message(), HasSubstr("port"));
  EXPECT_THAT(ParseWebhookUrl("http://h:99999/").status().message(), HasSubstr("port"));
  EXPECT_THAT(ParseWebhookUrl("http:///x").status().message(), HasSubstr("no host"));
  EXPECT_THAT(ParseWebhookUrl("http://h\r\nX: y/").status().message(), HasSubstr("control"));
  EXPECT_FALSE(ParseWebhookUrl("http://h/" + std::string(3000, 'a')).ok());
}

TEST(WebhookUrlTest, TheAllowListMatchesHostsPortsAndDomains) {
  const WebhookUrl u = *ParseWebhookUrl("http://ci.corp.example:8080/hook");
  EXPECT_FALSE(WebhookAllowed(u, {}));
  EXPECT_TRUE(WebhookAllowed(u, {"*"}));
  EXPECT_TRUE(WebhookAllowed(u, {"CI.corp.example"}));
  EXPECT_TRUE(WebhookAllowed(u, {"ci.corp.example:8080"}));
  EXPECT_FALSE(WebhookAllowed(u, {"ci.corp.example:9090"}));
  EXPECT_TRUE(WebhookAllowed(u, {"*.corp.example"}));
  EXPECT_FALSE(WebhookAllowed(*ParseWebhookUrl("http://evilcorp.example/"), {"*.corp.example"}));
  EXPECT_FALSE(WebhookAllowed(*ParseWebhookUrl("http://169.254.169.254/"), {"*.corp.example", "10.0.0.5"}));
  EXPECT_TRUE(WebhookAllowed(*ParseWebhookUrl("http://[::1]:9000/"), {"[::1]:9000"}));
  EXPECT_TRUE(WebhookAllowed(*ParseWebhookUrl("http://[::1]:9000/"), {"[::1]"}));
}

}  // namespace
}  // namespace icos::api
