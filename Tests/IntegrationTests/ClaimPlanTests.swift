import Foundation
@testable import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// How the database runs the two statements on every payment's path, `payment_claim` and
    /// `payment_complete` (migration 0022): with the planner settings `JobStore` names, and
    /// never committing past the timeout the worker gives them.
    @Suite struct ClaimPlanTests {
        /// A function's settings as the database holds them (`proconfig`).
        static func settings(of function: String, _ connection: PostgresConnection) async throws -> [String] {
            try await connection.query("SELECT unnest(proconfig) FROM pg_proc WHERE proname = \(function)", logger: TestEnvironment.logger)
                .collect().map { try $0.decode(String.self) }
        }

        /// The claim and the completion run with `JobStore`'s planner settings for them (their
        /// SET clauses), each planned once per server connection (a generic plan).
        @Test func theFunctionsRunWithTheirPlannerSettings() async throws {
            try await TestEnvironment.migrate()
            let (claim, complete) = try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 1) { client in
                try await client.withConnection { connection in
                    (Set(try await Self.settings(of: "payment_claim", connection)), Set(try await Self.settings(of: "payment_complete", connection)))
                }
            }
            func expected(_ planner: JobStore.PlannerSettings) -> Set<String> {
                Set(planner.disabled.map { "\($0)=off" } + ["plan_cache_mode=force_generic_plan"])
            }
            #expect(claim == expected(JobStore.claimPlanner))
            #expect(complete == expected(.batchJoinByPrimaryKey))
        }

        /// The claim reads the claimable index in its order and stops at the LIMIT, whatever
        /// the statistics say. The queue is mostly empty pages with few live rows; after each
        /// ANALYZE the planner priced the bloated partial index above a sequential scan of
        /// the table and chose scan + sort: every claim read every page of the queue (2,147
        /// buffers, 16 ms at 1,300 payments/s, 2026-12-06), where the index read ~150. The
        /// claim's own query, taken from the function the database holds, explained under the
        /// function's settings; the plan also shows its WHERE and ORDER BY still match the
        /// claimable index.
        @Test func theClaimWalksTheClaimableIndexNotTheTable() async throws {
            try await TestEnvironment.migrate()
            let plan = try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 1) { client in
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    let source = try await connection.query("SELECT prosrc FROM pg_proc WHERE proname = 'payment_claim'",
                                                            logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) }
                    let body = try #require(source.first)
                    let start = try #require(body.range(of: "RETURN QUERY"), "payment_claim returns no query")
                    let end = try #require(body[start.upperBound...].firstIndex(of: ";"))
                    var query = String(body[start.upperBound..<end])
                    for (parameter, value) in [("p_limit", "500"), ("p_owner", "'plan-test'"), ("p_lease_s", "30.0")] {
                        query = query.replacingOccurrences(of: parameter, with: value)
                    }
                    // A queue the planner sees as small: a sequential scan is its cheapest plan.
                    try await connection.query("ANALYZE payment_queue", logger: TestEnvironment.logger)
                    for setting in try await Self.settings(of: "payment_claim", connection) {
                        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
                        try await connection.query("SELECT set_config(\(parts[0]), \(parts[1]), true)", logger: TestEnvironment.logger)
                    }
                    return try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN (COSTS OFF) " + query), logger: TestEnvironment.logger)
                        .collect().map { try $0.decode(String.self) }.joined(separator: "\n")
                }
            }
            #expect(plan.contains("Index Scan using payment_queue_claimable on payment_queue"), "\(plan)")
            #expect(!plan.contains("Seq Scan"), "\(plan)")
            #expect(!plan.contains("Sort"), "\(plan)")
        }

        /// A claim or completion still running when its timeout has passed (its client, which
        /// waits as long and a second, is giving up) fails as a statement timeout does and
        /// commits nothing: statement_timeout cannot bound a function call, so each function
        /// checks its own time. The statement sleeps before the call (LATERAL orders it first).
        @Test func aClaimOrCompletionPastItsTimeoutCommitsNothing() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("late")
            try await Integration.WorkerTests.enqueue(1, prefix: prefix)
            let id = try await Integration.PaymentsGetMadeTests.ids(prefix)[0]
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 1) { client in
                // The payment waits behind a running backlog of other tests: make it first.
                try await client.query("UPDATE payment_queue SET priority = 0 WHERE id = \(id)", logger: TestEnvironment.logger)
                let store = JobStore(client: client, statementTimeout: .milliseconds(100), logger: TestEnvironment.logger)
                let owner = "late/\(UInt32.random(in: 0 ... .max))"
                func sqlState(_ query: PostgresQuery) async -> String? {
                    do {
                        _ = try await client.query(query, logger: TestEnvironment.logger).collect()
                        return nil
                    } catch {
                        return (error as? PSQLError)?.serverInfo?[.sqlState]
                    }
                }
                func state() async throws -> [String] {
                    try await client.query("SELECT state || '/' || coalesce(lease_owner, '') FROM payment_queue WHERE id = \(id)",
                                           logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) }
                }
                /// `statement` run 0.3 s after its statement arrived (its owner bind waits for the sleep).
                func late(_ statement: PostgresQuery, owner bind: String) -> PostgresQuery {
                    PostgresQuery(unsafeSQL: "SELECT c.* FROM (SELECT pg_sleep(0.3)::text AS t) r, LATERAL ("
                                  + statement.sql.replacingOccurrences(of: bind, with: "(\(bind) || r.t)") + ") c", binds: statement.binds)
                }

                let claim = JobStore.claimStatement(limit: 1, owner: owner, lease: .seconds(30), timeoutMilliseconds: store.timeoutMilliseconds)
                #expect(claim.sql.contains("$2"))
                #expect(await sqlState(late(claim, owner: "$2")) == "57014")
                let afterLateClaim = try await state()
                #expect(afterLateClaim == ["queued/"], "a claim past its timeout committed")

                let job = try #require(try await store.claim(limit: 1, owner: owner, lease: .seconds(30)).first { $0.id == id })
                let done = [Completion(jobID: id, claim: job.claim, resolution: .succeeded(chargeID: "ch-late"))]
                let complete = JobStore.completeStatement(done, fence: .lease(owner: owner), margin: .seconds(2),
                                                          timeoutMilliseconds: store.timeoutMilliseconds)
                #expect(complete.sql.contains("$14::text"))
                #expect(await sqlState(late(complete, owner: "$14")) == "57014")
                let afterLateCompletion = try await state()
                #expect(afterLateCompletion == ["running/\(owner)"], "a completion past its timeout committed")
                // In time, the same completion is recorded.
                let recorded = try await store.complete(done, fence: .lease(owner: owner), margin: .seconds(2))
                #expect(recorded.map(\.id) == [id])
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
