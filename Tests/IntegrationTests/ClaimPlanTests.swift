import Foundation
@testable import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// The claim reads the claimable index in its order and stops at the LIMIT, whatever
    /// the statistics say. The queue is mostly empty pages with few live rows; after each
    /// ANALYZE the planner priced the bloated partial index above a sequential scan of the
    /// table and chose scan + sort: every claim read every page of the queue (2,147 buffers,
    /// 16 ms at 1,300 payments/s, 2026-12-06), where the index read ~150. Explained under
    /// the settings `claim` runs with (`JobStore.claimPlanner`); the plan also shows the
    /// claim's WHERE and ORDER BY still match the claimable index.
    @Suite struct ClaimPlanTests {
        @Test func theClaimWalksTheClaimableIndexNotTheTable() async throws {
            try await TestEnvironment.migrate()
            let plan = try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 1) { client in
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    // A queue the planner sees as small: a sequential scan is its cheapest plan.
                    try await connection.query("ANALYZE payment_queue", logger: TestEnvironment.logger)
                    try await connection.query(JobStore.transactionSettings(JobStore.claimPlanner, timeout: .seconds(5)),
                                               logger: TestEnvironment.logger)
                    // The claim's server-side timeout is in force with its planner settings (a
                    // claim that outlives its client must be ended by PostgreSQL too).
                    let timeout = try await connection.query("SELECT current_setting('statement_timeout')", logger: TestEnvironment.logger)
                        .collect().map { try $0.decode(String.self) }
                    #expect(timeout == ["5s"])
                    let claim = JobStore.claimStatement(limit: 500, owner: "plan-test", lease: .seconds(30))
                    let explain = PostgresQuery(unsafeSQL: "EXPLAIN (COSTS OFF) " + claim.sql, binds: claim.binds)
                    return try await connection.query(explain, logger: TestEnvironment.logger).collect()
                        .map { try $0.decode(String.self) }.joined(separator: "\n")
                }
            }
            #expect(plan.contains("Index Scan using payment_queue_claimable on payment_queue"), "\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(plan)")
            #expect(!plan.contains("Sort"), "\(plan)")
        }
    }
}
