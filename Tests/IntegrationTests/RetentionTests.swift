import Foundation
import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    @Suite struct RetentionTests {
        @Test func pruneArchivesOldFailedAndCancelledJobsOnly() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("retention")
            let result = try await TestEnvironment.run(["enqueue", "--count", "4", "--key-prefix", prefix])
            try #require(result.status == 0, "\(result.stderr)")
            // Four jobs: an old failure, an old cancellation, a recent failure, one still queued.
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    SELECT payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-0")), 'failed', 'test', now() - interval '40 days', 'card_declined'),
                           payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-1")), 'cancelled', 'test', now() - interval '40 days'),
                           payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-2")), 'failed', 'test', now(), 'card_declined')
                    """, logger: TestEnvironment.logger)
            }
            let dry = try await TestEnvironment.run(["prune", "--older-than-days", "30", "--dry-run"])
            #expect(dry.status == 0)
            #expect(dry.stdout.contains("would archive"), "\(dry.stdout)")
            let pruned = try await TestEnvironment.run(["prune", "--older-than-days", "30"])
            #expect(pruned.status == 0, "\(pruned.stderr)")
            let remaining = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%")")
            let archived = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs_archive WHERE idempotency_key LIKE \(prefix + "-%")")
            #expect(remaining == 2, "the recent failure and the queued job stay")
            #expect(archived == 2, "the two old terminal jobs are archived")
            let bad = try await TestEnvironment.run(["prune", "--older-than-days=-3"])
            #expect(bad.status != 0)
            #expect(bad.stderr.contains("--older-than-days must be"))
            try await QueueReset.cancelLeftovers()
        }

        /// Every serve keeps the partitions ahead, one that serves the API only
        /// (`--no-workers`) too: upkeep is a service of its own, not a worker's loop (it was
        /// one, and a `--no-workers` serve never created a partition). The
        /// furthest partition of the ledger (empty: it is ahead of every id) is dropped,
        /// and a `--no-workers` serve creates it again at start.
        @Test func aServeWithoutWorkersKeepsPartitionsAhead() async throws {
            try await TestEnvironment.migrate()
            _ = try await ReadFreshnessTests.superSQL("primary", "SELECT ledger_entries_add_partitions(2)")
            let furthest = try await ReadFreshnessTests.superSQL("primary", """
                SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                WHERE i.inhparent = 'ledger_entries'::regclass AND c.relname ~ '^ledger_entries_p[0-9]+$'
                """)
            try #require(furthest.hasPrefix("ledger_entries_p"))
            #expect(try await ReadFreshnessTests.superSQL("primary", "SELECT count(*) FROM \(furthest)") == "0")
            _ = try await ReadFreshnessTests.superSQL("primary", "DROP TABLE \(furthest)")
            let serve = try await APITests.startServer()
            try await TestEnvironment.eventually("the serve without workers created \(furthest) again", timeout: .seconds(20)) {
                try await ReadFreshnessTests.superSQL("primary", "SELECT to_regclass('\(furthest)') IS NOT NULL") == "t"
            }
            try await APITests.stop(serve)
        }

        /// Partition upkeep (every `serve` each minute, `prune`, the migrations) keeps
        /// partitions ready ahead of the ids intake gives: a payment finished now, or
        /// twenty million payments from now, lands in its own range of the history and of
        /// the ledger, never in a default partition (whose rows would block creating
        /// that range later). Shown with a posting written and rolled back.
        @Test func partitionUpkeepKeepsRangesReadyAheadOfTheIds() async throws {
            try await TestEnvironment.migrate()
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                do { try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    _ = try await connection.query("SELECT payment_history_add_partitions(2), ledger_entries_add_partitions(2)",
                                                   logger: TestEnvironment.logger).collect()
                    let last = try #require(try await connection.query("SELECT nextval('payment_ids')", logger: TestEnvironment.logger)
                        .collect().first?.decode(Int64.self))
                    for id in [last, last + 19_999_999] {
                        let rows = try await connection.query("""
                            INSERT INTO ledger_entries (job_id, side, account, amount_minor, currency, attempt)
                            VALUES (\(id), 'credit', 'acct_2', 100, 'EUR', 1)
                            RETURNING tableoid::regclass::text,
                                      to_regclass(format('payment_history_p%s', lpad((\(id) / 10000000)::text, 4, '0')))::text
                            """, logger: TestEnvironment.logger).collect()
                        let (ledgerPartition, historyPartition) = try #require(rows.first).decode((String, String?).self)
                        #expect(ledgerPartition == String(format: "ledger_entries_p%05d", id / 1_000_000), "payment \(id): \(ledgerPartition)")
                        #expect(historyPartition == String(format: "payment_history_p%04d", id / 10_000_000), "payment \(id)")
                    }
                    // Leave nothing behind.
                    throw RollBack()
                } } catch where rootCause(error) is RollBack {}
            }
        }
    }

    struct RollBack: Error {}
}
