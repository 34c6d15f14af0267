// Registry mutations: each writes its row and one audit row in the same
// transaction; each invalid one returns an error a user can act on and
// leaves the database exactly as it was.
#include <gtest/gtest.h>

#include "controlplane/registry.h"
#include "controlplane/tests/temp_dir.h"

namespace tether::cp {
namespace {

using testing::TempDir;

const Attribution kAlice{"cli:alice", "ticket 42"};

// Every row of every registry table, as text.
std::string snapshot(Registry& reg) {
  std::string out;
  for (auto table :
       {"interfaces", "interface_addresses", "routes", "changes", "reconcile_status"}) {
    auto stmt = reg.database().prepare(std::string("SELECT * FROM ") + table + " ORDER BY 1, 2");
    EXPECT_TRUE(stmt);
    out += std::string("[") + table + "]\n";
    while (*stmt->step()) out += stmt->text(0) + "|" + stmt->text(1) + "|" + stmt->text(2) + "\n";
  }
  return out;
}

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = Registry::open(dir_.file("registry.db"));
    ASSERT_TRUE(r) << r.error().message;
    reg_.emplace(std::move(*r));
  }

  // The mutation fails with `code`, its message contains `words`, and
  // nothing in the database changed.
  template <typename F>
  void expect_refused(F&& mutation, Error::Code code, const std::string& words) {
    const std::string before = snapshot(*reg_);
    Result<ChangeId> r = mutation();
    ASSERT_FALSE(r) << "expected a refusal containing: " << words;
    EXPECT_EQ(r.error().code, code) << r.error().message;
    EXPECT_NE(r.error().message.find(words), std::string::npos) << r.error().message;
    EXPECT_EQ(snapshot(*reg_), before);
  }

  TempDir dir_;
  std::optional<Registry> reg_;
};

TEST_F(RegistryTest, AddAddressCreatesInterfaceAndAuditRow) {
  auto id = reg_->add_address("uplink", "10.0.1.1/24", kAlice);
  ASSERT_TRUE(id) << id.error().message;
  auto ifs = reg_->interfaces();
  ASSERT_EQ(ifs->size(), 1u);
  EXPECT_EQ((*ifs)[0].port, "uplink");
  ASSERT_EQ((*ifs)[0].addresses.size(), 1u);
  EXPECT_EQ(format_prefix((*ifs)[0].addresses[0]), "10.0.1.1/24");

  auto changes = reg_->changes();
  ASSERT_EQ(changes->size(), 1u);
  const auto& c = (*changes)[0];
  EXPECT_EQ(c.id, *id);
  EXPECT_EQ(c.actor, "cli:alice");
  EXPECT_EQ(c.reason, "ticket 42");
  EXPECT_EQ(c.action, "interface.address.add");
  EXPECT_EQ(c.detail["port"], "uplink");
  EXPECT_EQ(c.detail["address"], "10.0.1.1/24");
  EXPECT_EQ(c.detail["interface_created"], true);
  EXPECT_FALSE(c.at.empty());

  // A second address on the same port does not create it again.
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.9.1/24", kAlice));
  EXPECT_EQ(reg_->changes()->back().detail["interface_created"], false);
  EXPECT_EQ(reg_->interfaces()->at(0).addresses.size(), 2u);
}

TEST_F(RegistryTest, EveryMutationWritesOneAuditRow) {
  ASSERT_TRUE(reg_->add_interface("lan", kAlice));
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", "uplink"}, kAlice));
  ASSERT_TRUE(reg_->add_route({3, "0.0.0.0/0", "", "lan"}, kAlice));
  ASSERT_TRUE(reg_->del_route(0, "10.2.0.0/24", kAlice));
  ASSERT_TRUE(reg_->del_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->del_route(3, "0.0.0.0/0", kAlice));
  ASSERT_TRUE(reg_->del_interface("lan", kAlice));
  auto changes = reg_->changes();
  ASSERT_TRUE(changes);
  std::vector<std::string> actions;
  for (const auto& c : *changes) actions.push_back(c.action);
  EXPECT_EQ(actions, (std::vector<std::string>{
                         "interface.add", "interface.address.add", "route.add", "route.add",
                         "route.del", "interface.address.del", "route.del", "interface.del"}));
  const auto& last_route_del = changes->at(4);
  EXPECT_EQ(last_route_del.detail["prefix"], "10.2.0.0/24");
  EXPECT_EQ(last_route_del.detail["via"], "10.0.1.254");
  EXPECT_EQ(last_route_del.detail["port"], "uplink");
}

TEST_F(RegistryTest, RoutesListedWithTheirFields) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAlice));
  ASSERT_TRUE(reg_->add_route({7, "10.2.0.0/24", "", "uplink"}, {"cli:bob", ""}));
  auto all = reg_->routes();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].domain, 0);
  EXPECT_EQ(format_ipv4(*(*all)[0].via), "10.0.1.254");
  EXPECT_EQ((*all)[0].port, "");
  EXPECT_EQ((*all)[0].reason, "ticket 42");
  EXPECT_EQ((*all)[1].domain, 7);
  EXPECT_FALSE((*all)[1].via);
  EXPECT_EQ(reg_->routes(7)->size(), 1u);
}

TEST_F(RegistryTest, InvalidMutationsWriteNothing) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", "uplink"}, kAlice));
  using C = Error::Code;
  auto& r = *reg_;

  expect_refused(
      [&] {
        return r.add_route({0, "10.2.0.1/24", "10.0.1.254", ""}, kAlice);
      },
      C::kInvalid, "host bits set; did you mean 10.2.0.0/24?");
  expect_refused(
      [&] {
        return r.add_route({0, "10.2.0/24", "10.0.1.254", ""}, kAlice);
      },
      C::kInvalid, "is not an IPv4 prefix");
  expect_refused(
      [&] {
        return r.add_route({0, "10.3.0.0/33", "10.0.1.254", ""}, kAlice);
      },
      C::kInvalid, "is not an IPv4 prefix");
  expect_refused(
      [&] {
        return r.add_route({0, "10.2.0.0/24", "10.0.1.253", ""}, kAlice);
      },
      C::kConflict, "already exists");
  expect_refused(
      [&] {
        return r.add_route({0, "10.4.0.0/24", "10.0.1.254", "lan"}, kAlice);
      },
      C::kNotFound, "unknown interface lan");
  expect_refused(
      [&] {
        return r.add_route({0, "10.4.0.0/24", "", ""}, kAlice);
      },
      C::kInvalid, "needs a gateway");
  expect_refused(
      [&] {
        return r.add_route({0, "10.4.0.0/24", "10.0.1", ""}, kAlice);
      },
      C::kInvalid, "not a gateway address");
  expect_refused(
      [&] {
        return r.add_route({70000, "10.4.0.0/24", "10.0.1.254", ""}, kAlice);
      },
      C::kInvalid, "out of range");
  expect_refused([&] { return r.del_route(0, "10.9.0.0/24", kAlice); }, C::kNotFound,
                 "no route 10.9.0.0/24 in domain 0");

  expect_refused([&] { return r.add_address("uplink", "10.0.1.1/24", kAlice); }, C::kConflict,
                 "already on uplink");
  expect_refused([&] { return r.add_address("uplink", "10.0.1.1/16", kAlice); }, C::kConflict,
                 "delete that first");
  expect_refused([&] { return r.add_address("uplink", "10.0.5.0/24", kAlice); }, C::kInvalid,
                 "network address");
  expect_refused([&] { return r.add_address("uplink", "10.0.5.255/24", kAlice); }, C::kInvalid,
                 "broadcast address");
  expect_refused([&] { return r.add_address("uplink", "10.0.5.1", kAlice); }, C::kInvalid,
                 "address/length");
  expect_refused([&] { return r.add_address("bad port!", "10.0.5.1/24", kAlice); }, C::kInvalid,
                 "not a valid port name");
  expect_refused([&] { return r.add_address("", "10.0.5.1/24", kAlice); }, C::kInvalid,
                 "port name is required");
  expect_refused([&] { return r.del_address("lan", "10.0.5.1/24", kAlice); }, C::kNotFound,
                 "unknown interface lan");
  expect_refused([&] { return r.del_address("uplink", "10.0.5.1/24", kAlice); }, C::kNotFound,
                 "has no address 10.0.5.1/24");
  expect_refused([&] { return r.add_interface("uplink", kAlice); }, C::kConflict, "already exists");

  // Dependencies: the route's gateway needs 10.0.1.1/24; the route needs uplink.
  expect_refused([&] { return r.del_address("uplink", "10.0.1.1/24", kAlice); }, C::kConflict,
                 "reaches its gateway through 10.0.1.1/24");
  expect_refused([&] { return r.del_interface("uplink", kAlice); }, C::kConflict,
                 "is used by route 10.2.0.0/24");
  EXPECT_EQ(reg_->changes()->size(), 2u);
}

TEST_F(RegistryTest, GatewayCoveredByAnotherAddressMayLoseOne) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.0.1/16", kAlice));
  ASSERT_TRUE(reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAlice));
  EXPECT_TRUE(reg_->del_address("uplink", "10.0.1.1/24", kAlice));
  auto r = reg_->del_address("uplink", "10.0.0.1/16", kAlice);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kConflict);
}

TEST_F(RegistryTest, FailureAfterWritesRollsBackTheWholeTransaction) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  // Make the audit insert fail after the route row has been written.
  ASSERT_TRUE(reg_->database().exec(
      "CREATE TEMP TRIGGER no_route_audit BEFORE INSERT ON changes "
      "WHEN NEW.action = 'route.add' BEGIN SELECT RAISE(ABORT, 'audit refused'); END"));
  const std::string before = snapshot(*reg_);
  auto r = reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAlice);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Error::Code::kInternal);
  EXPECT_NE(r.error().message.find("audit refused"), std::string::npos);
  EXPECT_EQ(snapshot(*reg_), before);
  EXPECT_TRUE(reg_->routes()->empty());
}

TEST_F(RegistryTest, DesiredStateIsOneConsistentRead) {
  ASSERT_TRUE(reg_->add_address("uplink", "10.0.1.1/24", kAlice));
  ASSERT_TRUE(reg_->add_interface("lan", kAlice));
  auto last = reg_->add_route({0, "10.2.0.0/24", "10.0.1.254", ""}, kAlice);
  auto d = reg_->desired_state();
  ASSERT_TRUE(d);
  EXPECT_EQ(d->as_of, *last);
  ASSERT_EQ(d->addresses.size(), 1u);  // an interface without addresses adds nothing
  EXPECT_EQ(d->addresses[0].port, "uplink");
  ASSERT_EQ(d->routes.size(), 1u);
}

TEST_F(RegistryTest, DataVersionMovesWhenAnotherConnectionCommits) {
  auto before = reg_->data_version();
  ASSERT_TRUE(before);
  ASSERT_TRUE(reg_->add_interface("own", kAlice));
  EXPECT_EQ(*reg_->data_version(), *before);  // own writes do not count
  {
    auto other = Registry::open(dir_.file("registry.db"));
    ASSERT_TRUE(other);
    ASSERT_TRUE(other->add_interface("lan", kAlice));
  }
  EXPECT_NE(*reg_->data_version(), *before);
}

TEST_F(RegistryTest, ReconcileStatusIsWrittenOnlyWhenItChanges) {
  EXPECT_FALSE(*reg_->reconcile_status());
  ReconcileStatus ok{"in_sync", 5, 3, "", ""};
  EXPECT_TRUE(*reg_->record_reconcile(ok));
  EXPECT_FALSE(*reg_->record_reconcile(ok));
  auto s = *reg_->reconcile_status();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, "in_sync");
  EXPECT_EQ(*s->generation, 5u);
  EXPECT_TRUE(reg_->changes()->empty());  // being in sync is not an audit event

  ReconcileStatus refused{"refused", 5, 3, "route add 10.9.0.0/24: no", ""};
  EXPECT_TRUE(*reg_->record_reconcile(refused));
  EXPECT_FALSE(*reg_->record_reconcile(refused));
  ASSERT_EQ(reg_->changes()->size(), 1u);
  EXPECT_EQ(reg_->changes()->back().action, "reconcile.refused");
  EXPECT_EQ(reg_->changes()->back().actor, "reconciler");
  EXPECT_EQ(reg_->changes()->back().detail["message"], "route add 10.9.0.0/24: no");

  EXPECT_TRUE(*reg_->record_reconcile({"in_sync", 6, 4, "", ""}));
  EXPECT_EQ(reg_->changes()->back().action, "reconcile.recovered");
}

}  // namespace
}  // namespace tether::cp
