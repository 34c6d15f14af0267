// The Reconciler against a fake dataplane speaking the real wire format:
// applies only a non-empty diff, leaves config entries alone, retries on
// conflict, records refusals without re-sending them.
#include <gtest/gtest.h>

#include <csignal>

#include "controlplane/reconciler.h"
#include "controlplane/tests/fake_dataplane.h"
#include "controlplane/tests/temp_dir.h"

namespace tether::cp {
namespace {

using testing::FakeDataplane;
using testing::TempDir;
using State = ReconcileOutcome::State;

const Attribution kAdmin{"test", ""};

class ReconcilerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Registry::open(dir_.file("registry.db"));
    ASSERT_TRUE(r) << r.error().message;
    reg_.emplace(std::move(*r));
    dp_.emplace(dir_.file("dp.sock"), std::vector<std::string>{"uplink", "lan"});
    // The boot configuration (docs/config.md).
    dp_->add_address("uplink", "10.0.1.1/24", "config");
    dp_->add_address("lan", "10.0.2.1/24", "config");
    dp_->add_route(0, "0.0.0.0/0", "10.0.1.254", "uplink", "config");
    rec_.emplace(*reg_, dir_.file("dp.sock"));
    auto c = rec_->connect();
    ASSERT_TRUE(c) << c.error->message;
    EXPECT_EQ(c.value, 1u);
  }

  TempDir dir_;
  std::optional<Registry> reg_;
  std::optional<FakeDataplane> dp_;
  std::optional<Reconciler> rec_;
};

TEST_F(ReconcilerTest, NothingDesiredSendsNothing) {
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kInSync) << out.message;
  EXPECT_EQ(dp_->calls("config.apply"), 0);
  EXPECT_EQ(dp_->generation(), 1u);
  EXPECT_EQ(rec_->synced_generation(), 1u);
  EXPECT_EQ((*reg_->reconcile_status())->state, "in_sync");
}

TEST_F(ReconcilerTest, AppliesDesiredStateOnceThenStaysQuiet) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.9.1/24", kAdmin));
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.9.254", ""}, kAdmin));
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kInSync) << out.message;
  EXPECT_EQ(out.applied, 2u);
  EXPECT_EQ(out.generation, 2u);
  EXPECT_EQ(dp_->calls("config.apply"), 1);
  EXPECT_TRUE(dp_->has_address("uplink", "10.0.9.1/24", "api"));
  EXPECT_TRUE(dp_->has_route(0, "10.2.0.0/24", "api"));
  EXPECT_TRUE(dp_->has_route(0, "0.0.0.0/0", "config"));

  // A restarted control plane (a new Reconciler) finds nothing to send.
  Reconciler again(*reg_, dir_.file("dp.sock"));
  ASSERT_TRUE(again.connect());
  auto second = again.reconcile_once();
  EXPECT_EQ(second.state, State::kInSync);
  EXPECT_EQ(second.applied, 0u);
  EXPECT_EQ(dp_->calls("config.apply"), 1);
  EXPECT_EQ(dp_->generation(), 2u);
}

TEST_F(ReconcilerTest, RemovesStaleApiEntriesOnlyInDependencyOrder) {
  dp_->add_address("lan", "10.0.8.1/24", "api");
  dp_->add_route(0, "10.5.0.0/16", "10.0.8.254", "lan", "api");
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kInSync) << out.message;
  EXPECT_EQ(out.applied, 2u);
  EXPECT_FALSE(dp_->has_route(0, "10.5.0.0/16", "api"));
  EXPECT_FALSE(dp_->has_address("lan", "10.0.8.1/24", "api"));
  EXPECT_TRUE(dp_->has_address("lan", "10.0.2.1/24", "config"));
  EXPECT_TRUE(dp_->has_route(0, "0.0.0.0/0", "config"));
}

TEST_F(ReconcilerTest, ConflictRereadsAndRetries) {
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAdmin));
  dp_->conflict_next_applies(2);
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kInSync) << out.message;
  EXPECT_EQ(dp_->calls("config.apply"), 3);
  EXPECT_EQ(dp_->calls("routes.list"), 3);
  EXPECT_TRUE(dp_->has_route(0, "10.2.0.0/24", "api"));
}

TEST_F(ReconcilerTest, GivesUpWhenTheGenerationNeverSettles) {
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAdmin));
  dp_->conflict_next_applies(100);
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kError);
  EXPECT_EQ(dp_->calls("config.apply"), Reconciler::kMaxConflictRetries + 1);
}

TEST_F(ReconcilerTest, RefusalIsRecordedAndNotResent) {
  ASSERT_TRUE(reg_->add_route({0, "10.3.0.0/24", "10.0.1.254", ""}, kAdmin));
  ASSERT_TRUE(reg_->add_route({0, "10.4.0.0/24", "10.0.1.254", ""}, kAdmin));
  dp_->refuse_prefix("10.3.0.0/24");

  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kRefused);
  EXPECT_NE(out.message.find("route add 10.3.0.0/24"), std::string::npos) << out.message;
  EXPECT_NE(out.message.find("refused by the test"), std::string::npos) << out.message;
  // The good route went in on its own.
  EXPECT_EQ(out.applied, 1u);
  EXPECT_TRUE(dp_->has_route(0, "10.4.0.0/24", "api"));
  EXPECT_FALSE(dp_->has_route(0, "10.3.0.0/24", "api"));
  auto status = *reg_->reconcile_status();
  EXPECT_EQ(status->state, "refused");
  EXPECT_EQ(status->generation, dp_->generation());
  EXPECT_EQ(reg_->changes()->back().action, "reconcile.refused");

  // Nothing changed: the refused change is not sent again, nothing new is audited.
  const int applies = dp_->calls("config.apply");
  const size_t audit_rows = reg_->changes()->size();
  for (int i = 0; i < 3; ++i) EXPECT_EQ(rec_->reconcile_once().state, State::kRefused);
  EXPECT_EQ(dp_->calls("config.apply"), applies);
  EXPECT_EQ(reg_->changes()->size(), audit_rows);

  // The admin removes the bad route: back in sync, and the audit says so.
  ASSERT_TRUE(reg_->del_route(0, "10.3.0.0/24", kAdmin));
  out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kInSync) << out.message;
  EXPECT_EQ(reg_->changes()->back().action, "reconcile.recovered");
}

TEST_F(ReconcilerTest, HeldBackEntriesAreReportedAsPartial) {
  ASSERT_TRUE(reg_->add_route({0, "0.0.0.0/0", "10.0.1.253", ""}, kAdmin));
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kPartial);
  EXPECT_NE(out.message.find("config route 0.0.0.0/0"), std::string::npos) << out.message;
  EXPECT_EQ(dp_->calls("config.apply"), 0);
  EXPECT_EQ(reg_->changes()->back().action, "reconcile.partial");
}

TEST_F(ReconcilerTest, LostDataplaneIsReportedAsUnreachable) {
  // As in the daemon (controlplane/daemon.cc): writing to a closed socket
  // must fail with EPIPE, not kill the process.
  signal(SIGPIPE, SIG_IGN);
  dp_.reset();  // the dataplane goes away
  auto out = rec_->reconcile_once();
  EXPECT_EQ(out.state, State::kUnreachable);
  EXPECT_FALSE(rec_->connected());
  EXPECT_FALSE(rec_->connect());
}

}  // namespace
}  // namespace tether::cp
