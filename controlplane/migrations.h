// Versioned schema migrations of the registry database. Owned by
// controlplane/; called by Registry::open on the thread that opens it.
// Migration N is an ordered SQL step applied in its own transaction together
// with its row in `schema_migrations`; reopening applies only the steps the
// database has not seen; a database newer than this binary is refused.
// Rules for adding a migration: docs/registry.md.
#pragma once

#include <span>
#include <string_view>

#include "controlplane/result.h"
#include "controlplane/sqlite.h"

namespace tether::cp {

struct Migration {
  int version;            // 1, 2, 3, ... without gaps
  std::string_view name;  // short, for schema_migrations.name
  std::string_view sql;   // one or more statements
};

// The registry's schema, oldest first.
std::span<const Migration> registry_migrations();

// Highest version the database has recorded; 0 for a fresh database.
Result<int> schema_version(sql::Database& db);

// Brings `db` to the last version in `migrations`; returns that version.
Result<int> migrate(sql::Database& db, std::span<const Migration> migrations);

}  // namespace tether::cp
