#include "controlplane/migrations.h"

#include <string>

namespace tether::cp {
namespace {

// Never edit a migration that has shipped; append a new one.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE interfaces (
  port       TEXT PRIMARY KEY CHECK (length(port) BETWEEN 1 AND 64),
  created_at TEXT NOT NULL
);
CREATE TABLE interface_addresses (
  port       TEXT NOT NULL REFERENCES interfaces(port) ON DELETE RESTRICT,
  address    TEXT NOT NULL,  -- canonical a.b.c.d/len, host bits kept
  created_at TEXT NOT NULL,
  PRIMARY KEY (port, address)
);
CREATE TABLE routes (
  domain     INTEGER NOT NULL DEFAULT 0 CHECK (domain BETWEEN 0 AND 65535),
  prefix     TEXT NOT NULL,  -- canonical network/len, no host bits
  via        TEXT,           -- gateway; NULL: on-link out of `port`
  port       TEXT REFERENCES interfaces(port) ON DELETE RESTRICT,
  reason     TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL,
  PRIMARY KEY (domain, prefix),
  CHECK (via IS NOT NULL OR port IS NOT NULL)
);
CREATE TABLE changes (
  id     INTEGER PRIMARY KEY AUTOINCREMENT,
  at     TEXT NOT NULL,
  actor  TEXT NOT NULL,
  action TEXT NOT NULL,
  detail TEXT NOT NULL CHECK (json_valid(detail)),
  reason TEXT NOT NULL DEFAULT ''
);
CREATE TABLE reconcile_status (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  at         TEXT NOT NULL,
  state      TEXT NOT NULL,  -- in_sync | partial | refused | unreachable
  generation INTEGER,        -- the dataplane's, when known
  change_id  INTEGER,        -- last change included in the desired state
  message    TEXT NOT NULL DEFAULT ''
);
)sql";

constexpr Migration kMigrations[] = {
    {1, "interfaces, routes, changes, reconcile_status", kV1},
};

constexpr std::string_view kMigrationsTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    INTEGER PRIMARY KEY,
  name       TEXT NOT NULL,
  applied_at TEXT NOT NULL
))sql";

}  // namespace

std::span<const Migration> registry_migrations() { return kMigrations; }

Result<int> schema_version(sql::Database& db) {
  auto st = db.exec(kMigrationsTable);
  if (!st) return st.error();
  auto v = db.query_int("SELECT coalesce(max(version), 0) FROM schema_migrations");
  if (!v) return v.error();
  return static_cast<int>(*v);
}

Result<int> migrate(sql::Database& db, std::span<const Migration> migrations) {
  for (size_t i = 0; i < migrations.size(); ++i)
    if (migrations[i].version != static_cast<int>(i) + 1)
      return internal("migration list is not numbered 1..N (entry " + std::to_string(i) +
                      " has version " + std::to_string(migrations[i].version) + ")");
  const int latest = static_cast<int>(migrations.size());

  auto current = schema_version(db);
  if (!current) return current.error();
  if (*current > latest)
    return conflict("database schema version " + std::to_string(*current) +
                    " is newer than this tether-controlplane understands (up to " +
                    std::to_string(latest) +
                    "); run a tether-controlplane at least as new as the one that wrote it");

  for (const auto& m : migrations) {
    if (m.version <= *current) continue;
    auto tx = sql::Transaction::begin(db, sql::Transaction::Mode::kWrite);
    if (!tx) return tx.error();
    // Another process may have migrated while we waited for the lock.
    auto now = db.query_int("SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (!now) return now.error();
    if (*now >= m.version) continue;
    if (auto st = db.exec(m.sql); !st)
      return internal("schema migration " + std::to_string(m.version) + " (" + std::string(m.name) +
                      ") failed: " + st.error().message);
    auto ins = db.prepare(
        "INSERT INTO schema_migrations (version, name, applied_at) "
        "VALUES (?1, ?2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))");
    if (!ins) return ins.error();
    ins->bind(1, int64_t{m.version}).bind(2, m.name);
    if (auto st = ins->run(); !st) return st.error();
    if (auto st = tx->commit(); !st) return st.error();
  }
  return latest;
}

}  // namespace tether::cp
