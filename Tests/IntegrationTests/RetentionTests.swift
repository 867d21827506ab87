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
                    SELECT payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-0")), 'failed', 'test', now() - interval '40 days'),
                           payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-1")), 'cancelled', 'test', now() - interval '40 days'),
                           payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(prefix + "-2")), 'failed', 'test', now())
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
    }
}
