import Foundation
@testable import PaymentsBench
@testable import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// The statements that move a payment's row to the next table name every column
    /// (whole literal statements, no shared fragment; the completion's is a function): a column a migration adds and a
    /// statement leaves out would be lost, silently, as NULL.
    @Suite struct StatementColumnsTests {
        static func columns(of table: String) async throws -> Set<String> {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                Set(try await client.query("""
                    SELECT column_name::text FROM information_schema.columns
                    WHERE table_schema = 'public' AND table_name = \(table) AND column_name <> 'archived_at'
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) })
            }
        }

        /// The column list after `INSERT INTO <table> (`.
        static func insertColumns(_ sql: String, into table: String) throws -> Set<String> {
            let start = try #require(sql.range(of: "INSERT INTO \(table) ("), "no insert into \(table)")
            let end = try #require(sql[start.upperBound...].firstIndex(of: ")"))
            return Set(sql[start.upperBound..<end].split(separator: ",").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        }

        @Test func theHistoryAndArchiveInsertsNameEveryColumn() async throws {
            try await TestEnvironment.migrate()
            let history = try await Self.columns(of: "payment_history")
            #expect(history == (try await Self.columns(of: "payment_queue")))
            // The completion as the database holds it (`payment_complete`, migration 0022).
            let completion = try #require(try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("SELECT prosrc FROM pg_proc WHERE proname = 'payment_complete'", logger: TestEnvironment.logger)
                    .collect().map { try $0.decode(String.self) }
            }.first)
            #expect(try Self.insertColumns(completion, into: "payment_history") == history)
            // The bench's discard of its own open payments moves rows to the history too.
            #expect(try Self.insertColumns(BenchSQL.discardStatement, into: "payment_history") == history)
            let archive = Retention.archiveStatement(olderThan: 60, batchSize: 1).sql
            #expect(try Self.insertColumns(archive, into: "payment_jobs_archive") == (try await Self.columns(of: "payment_jobs_archive")))
        }
    }
}
