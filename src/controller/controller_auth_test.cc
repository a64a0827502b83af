// Who may do what (authz.h), node credentials, and the token lifecycle:
// expiry, revocation, last use, across controller restarts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "controller/authz.h"
#include "controller/controller_test_util.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;

constexpr char kSecretJob[] = R"(
tasks:
  - command: ["sleep", "60"]
    resources: {cpu: 1, memory: 1Gi}
    env: {WANDB_API_KEY: secret}
)";

TEST(AuthorizeTest, EachRoleMayDoOnlyWhatItsRowSays) {
  const Principal admin{"a", Role::kAdmin, "admin"};
  const Principal user{"u", Role::kUser, "alice"};
  const Principal join{"j", Role::kAgent, ""};
  const Principal node{"n", Role::kNode, "", -1, -1, "n1"};
  const Principal gateway{"g", Role::kGateway, ""};
  for (Action a :
       {Action::kSubmitJob, Action::kReadJobs, Action::kControlJob, Action::kReadQueues, Action::kChangeQueues,
        Action::kReadNodes, Action::kChangeNodes, Action::kManageTokens, Action::kReadUsage, Action::kReadUtilisation,
        Action::kJoinNode, Action::kSpeakForNode, Action::kRouteServices}) {
    SCOPED_TRACE(static_cast<int>(a));
    EXPECT_TRUE(Authorize(admin, a, "n1").ok());
    const bool user_may = a == Action::kSubmitJob || a == Action::kReadJobs || a == Action::kControlJob ||
                          a == Action::kReadQueues || a == Action::kReadNodes || a == Action::kReadUsage ||
                          a == Action::kReadUtilisation;
    EXPECT_EQ(Authorize(user, a, "n1").ok(), user_may);
    EXPECT_EQ(Authorize(join, a, "n1").ok(), a == Action::kJoinNode);
    EXPECT_EQ(Authorize(node, a, "n1").ok(), a == Action::kSpeakForNode);
    EXPECT_FALSE(Authorize(node, a, "n2").ok());  // never for another node
    // A gateway routes and reports load, nothing else: no jobs, logs, nodes or tokens.
    EXPECT_EQ(Authorize(gateway, a, "n1").ok(), a == Action::kRouteServices);
  }
  EXPECT_THAT(std::string(Authorize(user, Action::kRouteServices).message()), HasSubstr("--role gateway"));
  EXPECT_THAT(std::string(Authorize(node, Action::kSpeakForNode, "n2").message()), HasSubstr("'n1'"));
  EXPECT_TRUE(MaySeeJobsOf(user, "alice"));
  EXPECT_FALSE(MaySeeJobsOf(user, "bob"));
  EXPECT_FALSE(MaySeeJobsOf(node, "alice"));
  EXPECT_FALSE(MaySeeJobsOf(join, "alice"));
  EXPECT_FALSE(MaySeeJobsOf(gateway, "alice"));
  EXPECT_FALSE(MaySeeJobsOf(gateway, ""));
  // Listings and usage: an admin sees everyone's, anyone else only its own
  // user's (a node or join token has none: "").
  EXPECT_EQ(VisibleOwner(admin), std::nullopt);
  EXPECT_EQ(VisibleOwner(user), "alice");
  EXPECT_EQ(VisibleOwner(node), "");
  EXPECT_TRUE(MayExceedQueuePriority(admin));
  for (const Principal& p : {user, join, node}) EXPECT_FALSE(MayExceedQueuePriority(p));
  EXPECT_STREQ(HoldKindOf(admin), "admin");
  EXPECT_STREQ(HoldKindOf(user), "user");
  EXPECT_TRUE(MayRelease(user, "user"));
  EXPECT_FALSE(MayRelease(user, "admin"));
  EXPECT_TRUE(MayRelease(admin, "admin"));
  EXPECT_EQ(RegistrationAction(join), Action::kJoinNode);
  for (const Principal& p : {admin, user, node}) EXPECT_EQ(RegistrationAction(p), Action::kSpeakForNode);
  for (Role r : {Role::kAdmin, Role::kUser, Role::kAgent, Role::kNode, Role::kGateway}) {
    EXPECT_EQ(ParseRole(RoleName(r)), r);
  }
  EXPECT_FALSE(ParseRole("root").has_value());
}

class ControllerAuthTest : public ControllerTest {
 protected:
  // A join token, as `icos server` makes one.
  std::string JoinToken() {
    auto t = controller_->CreateToken(admin_, Role::kAgent, "", "join");
    EXPECT_TRUE(t.ok()) << t.status();
    return t.value_or("");
  }
  Principal As(const std::string& secret) {
    auto who = controller_->Authenticate(secret);
    EXPECT_TRUE(who.ok()) << who.status();
    return who.value_or(Principal{});
  }
};

TEST_F(ControllerAuthTest, AJoinTokenRegistersANodeOnceAndItsCredentialSpeaksOnlyForIt) {
  const Principal join = As(JoinToken());
  auto cred1 = controller_->RegisterNode(join, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k");
  ASSERT_TRUE(cred1.ok()) << cred1.status();
  ASSERT_FALSE(cred1->empty());
  auto cred2 = controller_->RegisterNode(join, Node("n2"), "10.0.0.2", "http://10.0.0.2:9", "k");
  ASSERT_TRUE(cred2.ok()) << cred2.status();
  const Principal n1 = As(*cred1);
  EXPECT_EQ(n1.role, Role::kNode);
  EXPECT_EQ(n1.node, "n1");

  auto id = controller_->Submit(alice_, kSecretJob);
  ASSERT_TRUE(id.ok()) << id.status();
  for (const Principal& p : {n1, join}) {
    EXPECT_EQ(controller_->GetJob(p, *id).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(controller_->ListJobs(p, {}).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(controller_->Heartbeat(p, "n2", {}).status().code(), absl::StatusCode::kPermissionDenied);
    EXPECT_EQ(controller_->WatchAssignments(p, "n2", 0, 0).status().code(), absl::StatusCode::kPermissionDenied);
  }
  EXPECT_TRUE(controller_->Heartbeat(n1, "n1", {}).ok());
  EXPECT_TRUE(controller_->WatchAssignments(n1, "n1", 0, 0).ok());
  // The credential re-registers its own node (a restarted agent) and gets no new one.
  auto again = controller_->RegisterNode(n1, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "");
  EXPECT_EQ(controller_->RegisterNode(n1, Node("n2"), "10.0.0.1", "", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  // The join token cannot take a name that has joined, even after a restart.
  Open();
  auto taken = controller_->RegisterNode(join, Node("n1"), "10.9.9.9", "http://10.9.9.9:9", "k");
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(taken.status().message()), HasSubstr("icos token revoke"));
  EXPECT_TRUE(controller_->Authenticate(*cred1).ok());
  // Admins cannot mint node credentials directly.
  EXPECT_EQ(controller_->CreateToken(admin_, Role::kNode, "", "").status().code(), absl::StatusCode::kInvalidArgument);
}

// An agent's checkpoint retention asks which jobs ended: a node asks for
// itself only, learns nothing of open or unknown jobs (their directories
// stay), and asks a bounded question.
TEST_F(ControllerAuthTest, ANodeLearnsWhichOfItsJobsEndedAndNothingMore) {
  const Principal join = As(JoinToken());
  auto cred = controller_->RegisterNode(join, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k");
  ASSERT_TRUE(cred.ok()) << cred.status();
  const Principal n1 = As(*cred);
  auto open = controller_->Submit(alice_, kSecretJob);
  auto done = controller_->Submit(alice_, kSecretJob);
  ASSERT_TRUE(open.ok() && done.ok());
  clock_.Advance(5'000);
  ASSERT_TRUE(controller_->Cancel(alice_, *done).ok());
  auto ended = controller_->EndedJobs(n1, "n1", {*open, *done, 999'999});
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->size(), 1u);
  EXPECT_EQ((*ended)[0].first, *done);
  EXPECT_EQ((*ended)[0].second, clock_.NowMs());
  EXPECT_EQ(controller_->EndedJobs(n1, "n2", {*done}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->EndedJobs(alice_, "n1", {*done}).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(
      controller_->EndedJobs(n1, "n1", std::vector<int64_t>(Controller::kMaxEndedJobsQuestion + 1, 1)).status().code(),
      absl::StatusCode::kInvalidArgument);
  // After a restart the store answers alone.
  Open();
  ended = controller_->EndedJobs(n1, "n1", {*open, *done});
  ASSERT_TRUE(ended.ok()) << ended.status();
  ASSERT_EQ(ended->size(), 1u);
  EXPECT_EQ((*ended)[0].first, *done);
}

TEST_F(ControllerAuthTest, RevokingANodesCredentialFreesItsNameForTheJoinToken) {
  const Principal join = As(JoinToken());
  auto cred = controller_->RegisterNode(join, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k");
  ASSERT_TRUE(cred.ok());
  auto tokens = controller_->ListTokens(admin_);
  ASSERT_TRUE(tokens.ok());
  std::string id;
  for (const auto& t : *tokens) {
    if (t.node == "n1") id = t.token_hash.substr(0, 12);
  }
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(controller_->RevokeToken(admin_, id).ok());
  EXPECT_THAT(std::string(controller_->Authenticate(*cred).status().message()), HasSubstr("revoked"));
  auto rejoined = controller_->RegisterNode(join, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k");
  ASSERT_TRUE(rejoined.ok()) << rejoined.status();
  EXPECT_NE(*rejoined, *cred);
}

TEST_F(ControllerAuthTest, TokensExpireAndAreRevokedAcrossRestarts) {
  TokenOptions short_lived;
  short_lived.ttl_ms = 60'000;
  auto carol = controller_->CreateToken(admin_, Role::kUser, "carol", "carol-laptop", short_lived);
  ASSERT_TRUE(carol.ok());
  auto dave = controller_->CreateToken(admin_, Role::kUser, "dave", "ci");
  ASSERT_TRUE(dave.ok());
  auto erin = controller_->CreateToken(admin_, Role::kUser, "erin", "ci");
  ASSERT_TRUE(erin.ok());
  EXPECT_TRUE(controller_->Authenticate(*carol).ok());
  clock_.Advance(60'000);
  auto expired = controller_->Authenticate(*carol);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(expired.status().message()), HasSubstr("expired"));

  // A shared name is ambiguous: the error lists the ids to choose from.
  auto ambiguous = controller_->RevokeToken(admin_, "ci");
  EXPECT_EQ(ambiguous.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(controller_->RevokeToken(admin_, "no-such").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->RevokeToken(alice_, "ci").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->ListTokens(alice_).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(controller_->Authenticate(*dave).ok());
  auto tokens = controller_->ListTokens(admin_);
  ASSERT_TRUE(tokens.ok());
  std::string dave_id;
  for (const auto& t : *tokens) {
    if (t.user == "dave") dave_id = t.token_hash.substr(0, 8);  // 8 hex digits suffice
  }
  ASSERT_TRUE(controller_->RevokeToken(admin_, dave_id).ok());
  EXPECT_EQ(controller_->Authenticate(*dave).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(controller_->Authenticate(*erin).ok());
  ASSERT_TRUE(controller_->FlushTokenUse().ok());

  Open();  // revocation, expiry and last use are kept
  EXPECT_EQ(controller_->Authenticate(*dave).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(controller_->Authenticate(*carol).status().code(), absl::StatusCode::kUnauthenticated);
  tokens = controller_->ListTokens(admin_);
  ASSERT_TRUE(tokens.ok());
  for (const auto& t : *tokens) {
    if (t.user == "erin") {
      EXPECT_GT(t.last_used_ms, 0);
    }
    if (t.user == "carol") {
      EXPECT_GT(t.expires_ms, 0);
    }
  }
}

TEST_F(ControllerAuthTest, PinnedIdentitiesNeedAUidAndAPositiveLifetime) {
  TokenOptions gid_only;
  gid_only.gid = 100;
  EXPECT_EQ(controller_->CreateToken(admin_, Role::kUser, "x", "", gid_only).status().code(),
            absl::StatusCode::kInvalidArgument);
  TokenOptions pinned;
  pinned.uid = 65534;
  auto t = controller_->CreateToken(admin_, Role::kUser, "bob", "", pinned);
  ASSERT_TRUE(t.ok());
  const Principal bob = As(*t);
  EXPECT_EQ(bob.uid, 65534);
  EXPECT_EQ(bob.gid, 65534);  // the gid defaults to the uid
  EXPECT_EQ(controller_->CreateToken(admin_, Role::kUser, "", "").status().code(),
            absl::StatusCode::kInvalidArgument);  // a user token names its user
}

}  // namespace
}  // namespace icos::controller
