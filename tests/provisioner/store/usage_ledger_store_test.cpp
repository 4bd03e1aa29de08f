// The usage ledger against a real PostgreSQL: every change of a figure is one entry with the next
// revision, nothing else is; sequence order is commit order, so a reader after a cursor sees every
// entry exactly once, also those of transactions that committed after later-started ones.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "migrations.h"
#include "store.h"
#include "testbed.h"
#include "usage_store.h"

namespace billing::provisioner {
namespace {

using namespace std::chrono_literals;
using testbed::PostgresServer;

constexpr std::int64_t kHour = 3600;
constexpr std::int64_t kStart = 1795600800;  // 2026-11-25T10:00:00Z

UsageRecord Record(const std::string& customer, std::int64_t start, double quantity,
                   bool complete = true) {
  return UsageRecord{customer, "mqtt_messages", {start, start + kHour}, quantity, complete};
}

std::vector<LedgerEntry> ReadAll(Store& store, std::int64_t since = 0,
                                 const std::optional<std::string>& customer = std::nullopt) {
  std::vector<LedgerEntry> all;
  for (;;) {
    auto page = store.LedgerAfter(since, 2, customer);  // small pages: the cursor is exercised
    if (page.empty()) return all;
    since = NextCursor(page, since);
    all.insert(all.end(), page.begin(), page.end());
  }
}

class UsageLedgerStoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { postgres_ = std::make_unique<PostgresServer>(); }
  static void TearDownTestSuite() { postgres_.reset(); }
  void SetUp() override {
    static int counter = 0;
    database_ = "ledger_" + std::to_string(++counter);
    postgres_->CreateDatabase(database_);
  }
  std::string Url() const { return postgres_->Url(database_); }
  std::string Psql(const std::string& sql) const { return postgres_->Psql(sql, database_); }

  static std::unique_ptr<PostgresServer> postgres_;
  std::string database_;
};
std::unique_ptr<PostgresServer> UsageLedgerStoreTest::postgres_;

TEST_F(UsageLedgerStoreTest, TheMigrationStartsTheLedgerWithTheFiguresStoredBefore) {
  ApplyMigrations(Url(), 8);
  Psql(
      "INSERT INTO usage_records (customer_id, metric, period_start, period_end, quantity, "
      "complete, final) VALUES ('acme', 'mqtt_messages', to_timestamp(" +
      std::to_string(kStart) + "), to_timestamp(" + std::to_string(kStart + kHour) +
      "), 100, true, true); INSERT INTO usage_adjustments (customer_id, metric, period_start, "
      "period_end, delta, reason) VALUES ('acme', 'mqtt_messages', to_timestamp(" +
      std::to_string(kStart) + "), to_timestamp(" + std::to_string(kStart + kHour) +
      "), 20, 'replica')");
  EXPECT_EQ(Psql("SELECT max(version) FROM schema_migrations"), "8");
  Store store(Url(), 2, nullptr);  // migrates to the latest
  EXPECT_EQ(Psql("SELECT max(version) FROM schema_migrations"),
            std::to_string(LatestMigrationVersion()));
  const auto entries = ReadAll(store);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].sequence, 1);
  EXPECT_EQ(entries[0].revision, 1);
  EXPECT_EQ(entries[0].quantity, 120);  // the current figure: the record and its adjustment
  EXPECT_EQ(entries[0].delta, 120);
  EXPECT_TRUE(entries[0].final);
  // The next change continues its revisions.
  Psql(
      "INSERT INTO usage_adjustments (customer_id, metric, period_start, period_end, delta, "
      "reason) VALUES ('acme', 'mqtt_messages', to_timestamp(" +
      std::to_string(kStart) + "), to_timestamp(" + std::to_string(kStart + kHour) +
      "), -5, 'recount')");
  const auto next = store.LedgerAfter(1, 10, std::nullopt);
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].revision, 2);
  EXPECT_EQ(next[0].kind, LedgerEntryKind::kAdjustment);
  EXPECT_EQ(next[0].quantity, 115);
  EXPECT_EQ(next[0].delta, -5);
}

TEST_F(UsageLedgerStoreTest, EveryChangeIsOneEntryWithTheNextRevisionAndARerunWritesNone) {
  Store store(Url(), 2, nullptr);
  UsageStore usage(Url());
  EXPECT_EQ(usage.Upsert({Record("acme", kStart, 100, false), Record("beta", kStart, 7)}), 2u);
  EXPECT_EQ(usage.Upsert({Record("acme", kStart, 100, false), Record("beta", kStart, 7)}), 0u);
  EXPECT_EQ(ReadAll(store).size(), 2u);
  EXPECT_EQ(usage.Upsert({Record("acme", kStart, 120)}), 1u);  // late samples: complete now
  EXPECT_EQ(usage.FinalizeBefore(kStart + kHour), 2u);         // both final (the grace)
  EXPECT_EQ(usage.FinalizeBefore(kStart + kHour), 0u);
  // A complete recomputation of a final figure that differs: an adjustment, then nothing more.
  EXPECT_EQ(usage.Upsert({Record("acme", kStart, 150)}), 1u);
  EXPECT_EQ(usage.Upsert({Record("acme", kStart, 150)}), 0u);

  const auto acme = ReadAll(store, 0, "acme");
  ASSERT_EQ(acme.size(), 4u);
  const std::vector<std::tuple<int, LedgerEntryKind, double, double, bool, bool>> expected = {
      {1, LedgerEntryKind::kFigure, 100, 100, false, false},
      {2, LedgerEntryKind::kFigure, 120, 20, true, false},
      {3, LedgerEntryKind::kFinal, 120, 0, true, true},
      {4, LedgerEntryKind::kAdjustment, 150, 30, true, true}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& [revision, kind, quantity, delta, complete, final] = expected[i];
    SCOPED_TRACE("revision " + std::to_string(revision));
    EXPECT_EQ(acme[i].customer_id, "acme");
    EXPECT_EQ(acme[i].revision, revision);
    EXPECT_EQ(acme[i].kind, kind);
    EXPECT_EQ(acme[i].quantity, quantity);
    EXPECT_EQ(acme[i].delta, delta);
    EXPECT_EQ(acme[i].complete, complete);
    EXPECT_EQ(acme[i].final, final);
    if (i > 0) {
      EXPECT_GT(acme[i].sequence, acme[i - 1].sequence);
    }
  }
  // The API's finalisation is an entry too; the whole ledger holds beta's two.
  EXPECT_EQ(usage.Upsert({Record("beta", kStart + kHour, 9)}), 1u);
  EXPECT_EQ(store.FinalizeUsage("beta", kStart + 2 * kHour), 1u);
  const auto beta = ReadAll(store, 0, "beta");
  ASSERT_EQ(beta.size(), 4u);
  EXPECT_EQ(beta[3].kind, LedgerEntryKind::kFinal);
  EXPECT_EQ(beta[3].period.start, kStart + kHour);
  EXPECT_EQ(beta[3].revision, 2);
  EXPECT_EQ(ReadAll(store).size(), 8u);
  EXPECT_EQ(store.LedgerAfter(NextCursor(ReadAll(store), 0), 10, std::nullopt).size(), 0u);
}

// A transaction that took its entry's number holds the lock until it commits: one that starts
// later waits, so it cannot commit a higher number that a reader sees before the lower one.
TEST_F(UsageLedgerStoreTest, AWriterWaitsForTheOpenTransactionBeforeIt) {
  Store store(Url(), 2, nullptr);
  pqxx::connection first_connection(Url());
  pqxx::work first(first_connection);
  first.exec(
      "INSERT INTO usage_records (customer_id, metric, period_start, period_end, quantity, "
      "complete) VALUES ('first', 'mqtt_messages', to_timestamp(" +
      std::to_string(kStart) + "), to_timestamp(" + std::to_string(kStart + kHour) + "), 1, true)");
  auto second = std::async(std::launch::async, [&] {
    UsageStore usage(Url());
    return usage.Upsert({Record("second", kStart, 2)});
  });
  EXPECT_EQ(second.wait_for(1s), std::future_status::timeout) << "the second writer did not wait";
  EXPECT_EQ(store.LedgerAfter(0, 10, std::nullopt).size(), 0u);  // nothing committed yet
  first.commit();
  EXPECT_EQ(second.get(), 1u);
  const auto entries = ReadAll(store);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].customer_id, "first");
  EXPECT_EQ(entries[1].customer_id, "second");
  EXPECT_LT(entries[0].sequence, entries[1].sequence);
}

// Writers commit at random moments while a reader pages through the ledger with a cursor: the
// reader sees every entry exactly once, in sequence order.
TEST_F(UsageLedgerStoreTest, TheCursorReadsEveryEntryOfConcurrentWritersExactlyOnce) {
  Store store(Url(), 2, nullptr);
  constexpr int kWriters = 4;
  constexpr int kTransactions = 30;
  std::atomic<int> writers_left = kWriters;
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      pqxx::connection connection(Url());
      for (int t = 0; t < kTransactions; ++t) {
        pqxx::work tx(connection);
        tx.exec("SELECT pg_sleep(random() * 0.01)");  // begun at a random moment ...
        for (int r = 0; r < 2; ++r) {
          tx.exec(
              "INSERT INTO usage_records (customer_id, metric, period_start, period_end, "
              "quantity, complete) VALUES ('writer-" +
              std::to_string(w) + "', 'mqtt_messages', to_timestamp(" +
              std::to_string(kStart + (2 * t + r) * kHour) + "), to_timestamp(" +
              std::to_string(kStart + (2 * t + r + 1) * kHour) + "), " + std::to_string(t) +
              ", true)");
        }
        tx.exec("SELECT pg_sleep(random() * 0.01)");  // ... and committed at another
        tx.commit();
      }
      --writers_left;
    });
  }
  std::vector<LedgerEntry> seen;
  std::int64_t cursor = 0;
  bool last_round = false;
  while (!last_round) {
    last_round = writers_left == 0;  // one full read after every writer finished
    for (;;) {
      const auto page = store.LedgerAfter(cursor, 3, std::nullopt);
      if (page.empty()) break;
      cursor = NextCursor(page, cursor);
      seen.insert(seen.end(), page.begin(), page.end());
    }
  }
  for (auto& writer : writers) writer.join();

  ASSERT_EQ(seen.size(), static_cast<std::size_t>(kWriters * kTransactions * 2));
  std::set<std::int64_t> sequences;
  std::set<std::string> periods;
  for (std::size_t i = 0; i < seen.size(); ++i) {
    sequences.insert(seen[i].sequence);
    periods.insert(seen[i].customer_id + " " + std::to_string(seen[i].period.start));
    if (i > 0) {
      EXPECT_GT(seen[i].sequence, seen[i - 1].sequence);
    }
  }
  EXPECT_EQ(sequences.size(), seen.size()) << "an entry was read twice";
  EXPECT_EQ(periods.size(), seen.size()) << "an entry was read twice or one was skipped";
  EXPECT_EQ(*sequences.rbegin(), static_cast<std::int64_t>(seen.size()));  // no gap, no skip
}

}  // namespace
}  // namespace billing::provisioner
