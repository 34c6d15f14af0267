// Schema migrations: a fresh database gets the latest version, reopening
// applies nothing twice, a failed step leaves the earlier ones, a newer
// database is refused, and the registry runs in WAL mode with foreign keys.
#include <gtest/gtest.h>

#include "controlplane/migrations.h"
#include "controlplane/registry.h"
#include "controlplane/tests/temp_dir.h"

namespace tether::cp {
namespace {

using testing::TempDir;

int64_t count(sql::Database& db, const std::string& sql) { return *db.query_int(sql); }

TEST(Migrations, FreshDatabaseGetsLatestVersion) {
  TempDir dir;
  auto reg = Registry::open(dir.file("r.db"));
  ASSERT_TRUE(reg) << reg.error().message;
  const int latest = static_cast<int>(registry_migrations().size());
  EXPECT_EQ(reg->schema_version(), latest);
  EXPECT_EQ(*schema_version(reg->database()), latest);
  EXPECT_EQ(count(reg->database(), "SELECT count(*) FROM schema_migrations"), latest);
  for (auto table : {"interfaces", "interface_addresses", "routes", "changes", "reconcile_status"})
    EXPECT_EQ(count(reg->database(), std::string("SELECT count(*) FROM sqlite_schema WHERE "
                                                 "type = 'table' AND name = '") +
                                         table + "'"),
              1)
        << table;
}

TEST(Migrations, ReopenIsIdempotentAndKeepsData) {
  TempDir dir;
  {
    auto reg = Registry::open(dir.file("r.db"));
    ASSERT_TRUE(reg);
    ASSERT_TRUE(reg->add_address("uplink", "10.0.1.1/24", {"test", ""}));
  }
  auto reg = Registry::open(dir.file("r.db"));
  ASSERT_TRUE(reg) << reg.error().message;
  EXPECT_EQ(count(reg->database(), "SELECT count(*) FROM schema_migrations"),
            static_cast<int64_t>(registry_migrations().size()));
  auto ifs = reg->interfaces();
  ASSERT_TRUE(ifs);
  ASSERT_EQ(ifs->size(), 1u);
  EXPECT_EQ((*ifs)[0].port, "uplink");
}

TEST(Migrations, AppliesOnlyNewSteps) {
  TempDir dir;
  auto db = sql::Database::open(dir.file("m.db"));
  ASSERT_TRUE(db);
  // Step 1 would fail if it ran twice (the table exists then).
  const Migration v1[] = {{1, "one", "CREATE TABLE a (x INTEGER)"}};
  const Migration v2[] = {{1, "one", "CREATE TABLE a (x INTEGER)"},
                          {2, "two", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (7)"}};
  auto r1 = migrate(*db, v1);
  ASSERT_TRUE(r1) << r1.error().message;
  EXPECT_EQ(*r1, 1);
  auto again = migrate(*db, v1);
  ASSERT_TRUE(again) << again.error().message;
  auto r2 = migrate(*db, v2);
  ASSERT_TRUE(r2) << r2.error().message;
  EXPECT_EQ(*r2, 2);
  EXPECT_EQ(count(*db, "SELECT count(*) FROM a"), 1);
  EXPECT_EQ(count(*db, "SELECT max(version) FROM schema_migrations"), 2);
}

TEST(Migrations, FailedStepRollsBackAndKeepsEarlierSteps) {
  TempDir dir;
  auto db = sql::Database::open(dir.file("m.db"));
  ASSERT_TRUE(db);
  const Migration steps[] = {
      {1, "one", "CREATE TABLE a (x INTEGER)"},
      {2, "bad", "CREATE TABLE b (y INTEGER); INSERT INTO nowhere VALUES (1)"}};
  auto r = migrate(*db, steps);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("migration 2"), std::string::npos) << r.error().message;
  EXPECT_EQ(*schema_version(*db), 1);
  EXPECT_EQ(count(*db, "SELECT count(*) FROM sqlite_schema WHERE name = 'b'"), 0);
}

TEST(Migrations, RefusesListWithGaps) {
  TempDir dir;
  auto db = sql::Database::open(dir.file("m.db"));
  ASSERT_TRUE(db);
  const Migration steps[] = {{1, "one", "SELECT 1"}, {3, "three", "SELECT 1"}};
  EXPECT_FALSE(migrate(*db, steps));
}

TEST(Migrations, NewerDatabaseIsRefused) {
  TempDir dir;
  const std::string path = dir.file("r.db");
  {
    auto reg = Registry::open(path);
    ASSERT_TRUE(reg);
    ASSERT_TRUE(reg->database().exec(
        "INSERT INTO schema_migrations VALUES (999, 'from the future', '2099-01-01')"));
  }
  auto reg = Registry::open(path);
  ASSERT_FALSE(reg);
  EXPECT_NE(reg.error().message.find("schema version 999 is newer"), std::string::npos)
      << reg.error().message;
  EXPECT_NE(reg.error().message.find(path), std::string::npos);
}

TEST(Registry, RunsInWalModeWithForeignKeys) {
  TempDir dir;
  auto reg = Registry::open(dir.file("r.db"));
  ASSERT_TRUE(reg);
  EXPECT_EQ(*reg->journal_mode(), "wal");
  EXPECT_EQ(*reg->database().query_int("PRAGMA foreign_keys"), 1);
  EXPECT_GT(*reg->database().query_int("PRAGMA busy_timeout"), 0);
  // The foreign keys are enforced, not just declared.
  EXPECT_FALSE(reg->database().exec(
      "INSERT INTO interface_addresses VALUES ('nowhere', '10.0.0.1/24', 'now')"));
}

}  // namespace
}  // namespace tether::cp
