// A small RAII wrapper over the sqlite3 C API: a connection, a prepared
// statement, a transaction. Owned by controlplane/ and used only by the
// registry. A Database and its Statements belong to one thread at a time.
// Failures come back as Result values carrying sqlite's own message.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "controlplane/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tether::cp::sql {

class Statement {
 public:
  Statement() = default;
  explicit Statement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~Statement();
  Statement(Statement&& o) noexcept : stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1, as in sqlite.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, std::string_view value);
  Statement& bind(int index, const std::string& value) {
    return bind(index, std::string_view(value));
  }
  Statement& bind(int index, const char* value) { return bind(index, std::string_view(value)); }
  Statement& bind(int index, const std::optional<std::string>& value);

  // Advances: true when a row is available, false when done.
  Result<bool> step();
  // Runs to completion, ignoring rows.
  Status run();

  bool is_null(int column) const;
  int64_t int64(int column) const;
  std::string text(int column) const;
  std::optional<std::string> optional_text(int column) const;

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  // Opens (creating if absent) the database file at `path`.
  static Result<Database> open(const std::string& path);

  Database() = default;
  ~Database();
  Database(Database&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Database& operator=(Database&& o) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  // Runs one or more statements that return no rows we need.
  Status exec(std::string_view sql);
  Result<Statement> prepare(std::string_view sql);
  // The first column of the first row of a one-value query, as text.
  Result<std::string> query_text(std::string_view sql);
  Result<int64_t> query_int(std::string_view sql);

  int64_t last_insert_rowid() const;
  // Rows changed by the last INSERT, UPDATE or DELETE.
  int64_t changes() const;
  std::string last_error() const;
  sqlite3* handle() const { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// BEGIN IMMEDIATE (writers) or BEGIN DEFERRED (consistent reads); rolls back
// in the destructor unless commit() succeeded.
class Transaction {
 public:
  enum class Mode { kRead, kWrite };
  static Result<Transaction> begin(Database& db, Mode mode);

  Transaction(Transaction&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction();

  Status commit();

 private:
  explicit Transaction(Database* db) : db_(db) {}
  Database* db_ = nullptr;
};

}  // namespace tether::cp::sql
