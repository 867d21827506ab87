import Foundation
import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// An idempotency key names one payment for ever: across concurrent writers and
    /// across `payments prune`.
    @Suite struct IdempotencyKeyTests {
        static func line(_ key: String, amount: Int) -> String {
            #"{"idempotency_key": "\#(key)", "amount_minor": \#(amount), "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#
        }

        static func jobs(withKey key: String) async throws -> Int {
            try await TestEnvironment.scalar(TestEnvironment.writeURL, """
                SELECT (SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(key))
                     + (SELECT count(*) FROM payment_jobs_archive WHERE idempotency_key = \(key))
                """)
        }

        /// Defect: the file's conflict check ran in the insert's snapshot, so a key that a
        /// concurrent writer committed for another payment while the file was inserted
        /// was counted as a duplicate, and the file committed without that payment.
        @Test func aFileRacingAConflictingWriterIsRefusedWhole() async throws {
            try await TestEnvironment.migrate()
            let prefix = TestEnvironment.uniquePrefix("race-file")
            let contested = "\(prefix)-contested"
            let file = [Self.line("\(prefix)-a", amount: 100), Self.line(contested, amount: 200)].joined(separator: "\n")
            // Another writer holds the contested key, for another amount, uncommitted, while
            // the file goes in; it commits once the file's insert is waiting on it.
            let enqueue = try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 2) { client in
                try await client.withConnection { connection in
                    try await connection.query("BEGIN", logger: TestEnvironment.logger)
                    try await connection.query("""
                        INSERT INTO payment_keys (idempotency_key, payment_id, request_fingerprint)
                        VALUES (\(contested), nextval('payment_ids'), 'another payment')
                        """, logger: TestEnvironment.logger)
                    let running = Task { try await TestEnvironment.run(["enqueue", "--input", "-"], stdin: Data(file.utf8)) }
                    try await Task.sleep(for: .seconds(2))  // the file's INSERT now waits on our row
                    try await connection.query("COMMIT", logger: TestEnvironment.logger)
                    return try await running.value
                }
            }
            #expect(enqueue.status != 0, "the file must be refused: \(enqueue.stdout) \(enqueue.stderr)")
            #expect(enqueue.stderr.contains("already exists for a different payment"), "\(enqueue.stderr)")
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(prefix + "-a")") == 0, "nothing of the file is inserted")
        }

        /// Defect: after `payments prune` moved a failed payment to the archive, its key
        /// created a second job (201), while the gateway would answer the old charge.
        @Test func aKeyReusedAfterPruneReturnsTheArchivedPayment() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let key = TestEnvironment.uniquePrefix("pruned-key")
            let body = Data(#"{"amount_minor": 700, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#.utf8)
            let serve = try await APITests.startServer()
            let first = try await APITests.post(key, body)
            try #require(first.status == 201)
            let id = try #require(first.json?["id"] as? Int)
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    SELECT payment_queue_finish(ARRAY(SELECT id FROM payment_queue WHERE idempotency_key = \(key)),
                                                'failed', 'test', now() - interval '400 days', 'card_declined')
                    """, logger: TestEnvironment.logger)
            }
            let pruned = try await TestEnvironment.run(["prune", "--older-than-days", "365"])
            try #require(pruned.status == 0, "\(pruned.stderr)")
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs_archive WHERE idempotency_key = \(key)") == 1)

            let again = try await APITests.post(key, body)
            #expect(again.status == 200, "the archived payment, not a new one: \(again.status)")
            #expect(again.json?["id"] as? Int == id)
            #expect(again.json?["state"] as? String == "failed")
            let other = try await APITests.post(key, Data(#"{"amount_minor": 701, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#.utf8))
            #expect(other.status == 409)
            let read = try await HTTP.request("GET", "\(APITests.base)/v1/payments/\(id)")
            #expect(read.status == 200, "an archived payment can still be read")
            #expect(read.json?["state"] as? String == "failed")

            // The same through enqueue: the same body is a duplicate, another body refuses the file.
            let same = try await TestEnvironment.run(["enqueue", "--input", "-"], stdin: Data(Self.line(key, amount: 700).utf8))
            #expect(same.status == 0, "\(same.stderr)")
            #expect(same.stdout.contains("0 new, 1 duplicates"), "\(same.stdout)")
            let different = try await TestEnvironment.run(["enqueue", "--input", "-"], stdin: Data(Self.line(key, amount: 701).utf8))
            #expect(different.status != 0)
            #expect(different.stderr.contains("already exists for a different payment"), "\(different.stderr)")
            #expect(try await Self.jobs(withKey: key) == 1, "one job for the key, ever")
            try await APITests.stop(serve)
        }
    }
}
