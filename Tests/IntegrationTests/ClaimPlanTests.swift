import Foundation
@testable import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    /// How the database runs the two statements on every payment's path, `payment_claim` and
    /// `payment_complete` (migration 0022): with the planner settings `JobStore` names, and
    /// never committing past the timeout the worker gives them.
    @Suite struct ClaimPlanTests {
        /// A function's body as the database holds it.
        static func source(of function: String, _ connection: PostgresConnection) async throws -> String? {
            try await connection.query("SELECT prosrc FROM pg_proc WHERE proname = \(function)", logger: TestEnvironment.logger)
                .collect().map { try $0.decode(String.self) }.first
        }

        /// A function's settings as the database holds them (`proconfig`).
        static func settings(of function: String, _ connection: PostgresConnection) async throws -> [String] {
            try await connection.query("SELECT unnest(proconfig) FROM pg_proc WHERE proname = \(function)", logger: TestEnvironment.logger)
                .collect().map { try $0.decode(String.self) }
        }

        /// The generic plan of `function`'s (last) returned query (a SQL function: its body), as the function makes it on
        /// a server connection's first call, under the function's own settings, while the
        /// statistics say `tables` are empty as a fresh database's are (no pages at all): each
        /// is truncated inside a savepoint that is then undone, so its rows and pages stay.
        /// Each parameter (name, type, value) becomes a `$n` of the prepared query. On the
        /// primary directly: a prepared statement outlives its transaction, and on a pooled
        /// server connection it would outlive this test too.
        static func genericPlan(of function: String, emptying tables: [String],
                                parameters: [(name: String, type: String, value: String)]) async throws -> String {
            try await TestEnvironment.withClient(TestEnvironment.primaryURL, maxConnections: 1) { client in
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    let body = try #require(try await Self.source(of: function, connection))
                    // A PL/pgSQL function's last RETURN QUERY, or a SQL function's whole body.
                    let start = body.range(of: "RETURN QUERY", options: .backwards)?.upperBound ?? body.startIndex
                    let end = body[start...].firstIndex(of: ";") ?? body.endIndex
                    var query = String(body[start..<end])
                    for (number, parameter) in parameters.enumerated() {
                        query = query.replacing(try Regex("\\b\(parameter.name)\\b"), with: "$\(number + 1)")
                    }
                    try await connection.query("SAVEPOINT empty_tables", logger: TestEnvironment.logger)
                    for table in tables {
                        try await connection.query(PostgresQuery(unsafeSQL: "TRUNCATE \(table)"), logger: TestEnvironment.logger)
                        try await connection.query(PostgresQuery(unsafeSQL: "ANALYZE \(table)"), logger: TestEnvironment.logger)
                    }
                    for setting in try await Self.settings(of: function, connection) {
                        let parts = setting.split(separator: "=", maxSplits: 1).map(String.init)
                        try await connection.query("SELECT set_config(\(parts[0]), \(parts[1]), true)", logger: TestEnvironment.logger)
                    }
                    let types = parameters.map(\.type).joined(separator: ", "), values = parameters.map(\.value).joined(separator: ", ")
                    try await connection.query(PostgresQuery(unsafeSQL: "PREPARE generic_plan_test(\(types)) AS " + query), logger: TestEnvironment.logger)
                    let plan = try await connection.query(PostgresQuery(unsafeSQL: "EXPLAIN (COSTS OFF) EXECUTE generic_plan_test(\(values))"),
                                                          logger: TestEnvironment.logger)
                        .collect().map { try $0.decode(String.self) }.joined(separator: "\n")
                    try await connection.query("DEALLOCATE generic_plan_test", logger: TestEnvironment.logger)
                    try await connection.query("ROLLBACK TO SAVEPOINT empty_tables", logger: TestEnvironment.logger)
                    return plan
                }
            }
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
            #expect(claim == expected(.claimInIndexOrder))
            #expect(complete == expected(.batchJoinByPrimaryKey))
        }

        /// The claim reads the claimable index in its order and stops at the LIMIT, whatever
        /// the statistics say. The queue is mostly empty pages with few live rows; after each
        /// ANALYZE the planner priced the bloated partial index above a sequential scan of
        /// the table and chose scan + sort: every claim read every page of the queue (2,147
        /// buffers, 16 ms at 1,300 payments/s, 2026-12-06), where the index read ~150. And
        /// it joins what it picked back by primary key, row by row: the function runs a
        /// generic plan, which cannot see the LIMIT. The claim's own query, taken from the
        /// function the database holds, prepared with its parameters and explained as a
        /// generic plan under the function's settings; the plan also shows its WHERE and
        /// ORDER BY still match the claimable index. (With hash and merge joins allowed, the
        /// generic plan against a backlog of 1,000,000 due payments hashed the whole primary
        /// key for each claim of 500: 529-846 ms a claim, 7.6 ms joined row by row;
        /// 2026-12-06. Too large a queue to build here, so this holds the shape.)
        ///
        /// The plan is made while the statistics say the queue is empty, as they do when a
        /// server connection first claims on an empty queue (a fresh start, or a queue
        /// drained and vacuumed: its pages kept, no rows on them), and the backend keeps that
        /// plan for its life. It still reads the picked rows by primary key, whatever the
        /// queue holds later: joined to what it picked, the UPDATE read the whole primary key
        /// and compared each row with each pick (a Join Filter, 3,971 x 500 rows, 560 ms a
        /// claim of 500 in the demo's first run on a fresh topology, 2026-12-07).
        @Test func theClaimWalksTheClaimableIndexNotTheTable() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let plan = try await Self.genericPlan(of: "payment_claim", emptying: ["payment_queue"],
                                                  parameters: [("p_limit", "int", "500"), ("p_owner", "text", "'plan-test'"), ("p_lease_s", "float8", "30")])
            #expect(plan.contains("Index Scan using payment_queue_claimable on payment_queue"), "\(plan)")
            #expect(plan.contains("Index Scan using payment_queue_pkey on payment_queue j"), "\(plan)")
            #expect(plan.contains("Index Cond: (id = ANY ("), "the picks read by primary key: \(plan)")
            for shape in ["Seq Scan", "Sort", "Bitmap", "Hash", "Merge", "Join Filter", "Nested Loop"] {
                #expect(!plan.contains(shape), "\(shape): \(plan)")
            }
        }

        /// No statement on a payment's path pays for JIT compilation, whatever the planner
        /// estimates. On a fresh database (no statistics) the intake of a batch of 5,000
        /// was estimated above `jit_above_cost` and compiled on every execution (the
        /// unnamed statement is planned each time): 676 ms for one batch, 572 of them
        /// compiling, in the demo's first run (2026-12-07). An estimate that high is made
        /// here by lowering the threshold to 0 for the transaction; through each pooler,
        /// as the server connections the payments use are set up.
        @Test func noStatementIsCompiledWhateverItsEstimate() async throws {
            try await TestEnvironment.migrate()
            var generator = JobGenerator(keyPrefix: TestEnvironment.uniquePrefix("jit"), seed: 7)
            var intake = IntakeSQL.insertCountingNew(PaymentRows((0..<5_000).map { generator.make(index: $0) }, distinctKeys: true))
            intake.sql = "EXPLAIN " + intake.sql
            let status: PostgresQuery = "EXPLAIN SELECT * FROM payment_status(1, NULL)"
            for (url, explain) in [(TestEnvironment.writeURL, intake), (TestEnvironment.readURL, status)] {
                let plan = try await TestEnvironment.withClient(url, maxConnections: 1) { client in
                    try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                        try await connection.query("SET LOCAL jit_above_cost = 0", logger: TestEnvironment.logger)
                        return try await connection.query(explain, logger: TestEnvironment.logger)
                            .collect().map { try $0.decode(String.self) }.joined(separator: "\n")
                    }
                }
                #expect(plan.contains("Insert on payment_queue") || plan.contains("Function Scan"), "\(plan)")
                #expect(!plan.contains("JIT"), "\(url): \(plan)")
            }
        }

        /// The functions write states, outcomes and failure reasons as SQL literals: each is
        /// one the Swift types know, and the completion's terminal states are exactly
        /// `JobState.terminal` (a terminal state it did not know would look like a lost
        /// lease: the job re-run instead of finished).
        @Test func theFunctionsNameOnlyTheStatesAndOutcomesSwiftKnows() async throws {
            try await TestEnvironment.migrate()
            let (claim, complete) = try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 1) { client in
                try await client.withConnection { connection in
                    (try await Self.source(of: "payment_claim", connection) ?? "", try await Self.source(of: "payment_complete", connection) ?? "")
                }
            }
            let known = Set(JobState.allCases.map(\.rawValue) + Completion.Outcome.allCases.map(\.rawValue)
                            + FailureReason.allCases.map(\.rawValue) + [JobStore.lockedElsewhere]
                            + ["debit", "credit", "infinity", "lock_timeout", "ms", "payment_claim", "payment_complete"])
            let literal = /'([a-z_]+)'/
            for body in [claim, complete] {
                let words = Set(body.matches(of: literal).map { String($0.output.1) })
                #expect(!words.isEmpty)
                #expect(words.subtracting(known).isEmpty, "unknown literals: \(words.subtracting(known).sorted())")
            }
            let terminal = "IN (" + JobState.terminal.map { "'\($0.rawValue)'" }.joined(separator: ", ") + ")"
            #expect(complete.components(separatedBy: terminal).count - 1 == 2, "the finished and kept rows split on \(terminal)")
        }

        /// A claim or completion still running when its timeout has passed (its client, which
        /// waits as long and a second, is giving up) fails as a statement timeout does and
        /// commits nothing: statement_timeout cannot bound a function call, so each function
        /// checks its own time. The statement sleeps before the call (LATERAL orders it
        /// first). And a completion whose row is locked elsewhere waits a second at most
        /// (half its timeout when shorter), writes nothing for it and says so.
        @Test func aClaimOrCompletionPastItsTimeoutCommitsNothing() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("late")
            try await Integration.WorkerTests.enqueue(1, prefix: prefix)
            let id = try await Integration.PaymentsGetMadeTests.ids(prefix)[0]
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 2) { client in
                // The payment waits behind a running backlog of other tests: make it first.
                try await client.query("UPDATE payment_queue SET priority = 0 WHERE id = \(id)", logger: TestEnvironment.logger)
                let store = JobStore(client: client, statementTimeout: .milliseconds(500), logger: TestEnvironment.logger)
                let owner = "late/\(UInt32.random(in: 0 ... .max))"
                func sqlState(_ run: () async throws -> Void) async -> String? {
                    do {
                        try await run()
                        return nil
                    } catch {
                        return (error as? PSQLError)?.serverInfo?[.sqlState] ?? "\(error)"
                    }
                }
                func state() async throws -> [String] {
                    try await client.query("SELECT state || '/' || coalesce(lease_owner, '') FROM payment_queue WHERE id = \(id)",
                                           logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) }
                }
                /// `statement` run a second after its statement arrived (its owner bind waits for the sleep).
                func late(_ statement: PostgresQuery, owner bind: String) -> PostgresQuery {
                    PostgresQuery(unsafeSQL: "SELECT c.* FROM (SELECT pg_sleep(1)::text AS t) r, LATERAL ("
                                  + statement.sql.replacingOccurrences(of: bind, with: "(\(bind) || r.t)") + ") c", binds: statement.binds)
                }

                let claim = JobStore.claimStatement(limit: 1, owner: owner, lease: .seconds(30), timeoutMilliseconds: store.timeoutMilliseconds)
                #expect(claim.sql.contains("$2"))
                let lateClaim = await sqlState { _ = try await client.query(late(claim, owner: "$2"), logger: TestEnvironment.logger).collect() }
                #expect(lateClaim == "57014")
                let afterLateClaim = try await state()
                #expect(afterLateClaim == ["queued/"], "a claim past its timeout committed")

                let job = try #require(try await store.claim(limit: 1, owner: owner, lease: .seconds(30)).first { $0.id == id })
                let done = [Completion(jobID: id, claim: job.claim, resolution: .succeeded(chargeID: "ch-late"))]
                let complete = JobStore.completeStatement(done, fence: .lease(owner: owner), margin: .seconds(2),
                                                          timeoutMilliseconds: store.timeoutMilliseconds)
                #expect(complete.sql.contains("$14::text"))
                let lateCompletion = await sqlState {
                    _ = try await client.query(late(complete, owner: "$14"), logger: TestEnvironment.logger).collect()
                }
                #expect(lateCompletion == "57014")
                let afterLateCompletion = try await state()
                #expect(afterLateCompletion == ["running/\(owner)"], "a completion past its timeout committed")

                // The row locked by another transaction until the completion returns: the
                // completion waits for it a second at most (migration 0023) and writes nothing for it.
                let (locked, waited) = try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(id) FOR UPDATE", logger: TestEnvironment.logger)
                    let started = ContinuousClock.now
                    let locked = try await store.complete(done, fence: .lease(owner: owner), margin: .seconds(2))
                    return (locked, ContinuousClock.now - started)
                }
                #expect(locked == CompletionWrite(locked: [id]))
                #expect(waited < .seconds(3), "waited \(waited) for the lock")
                let afterLockWait = try await state()
                #expect(afterLockWait == ["running/\(owner)"])
                // In time, the same completion is recorded.
                let recorded = try await store.complete(done, fence: .lease(owner: owner), margin: .seconds(2))
                #expect(recorded.recorded.map(\.id) == [id] && recorded.locked.isEmpty)
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A completion batch with one row another session holds locked (an operator's open
        /// transaction) writes the others after a second's wait and returns that row as
        /// locked, with the worker's default 15 s timeout. Before migration 0023 it waited out
        /// the whole timeout, wrote nothing and failed with 55P03.
        @Test func aRowLockedElsewhereCostsTheCompletionASecondNotItsTimeout() async throws {
            let configuration = Integration.WorkerServicesTests.configuration("lockwait")
            let owner = configuration.owner
            let (prefix, ids) = try await Integration.WorkerServicesTests.runningJobs(3, under: configuration, label: "lockwait", leaseMillis: 60_000)
            try #require(ids.count == 3)
            let batch = ids.map { Completion(jobID: $0, claim: 1, resolution: .succeeded(chargeID: "ch-lockwait-\($0)")) }
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 2) { client in
                let store = JobStore(client: client, logger: TestEnvironment.logger)
                #expect(store.statementTimeout == .seconds(15))
                let (write, waited) = try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(ids[1]) FOR UPDATE", logger: TestEnvironment.logger)
                    let started = ContinuousClock.now
                    let write = try await store.complete(batch, fence: .lease(owner: owner), margin: .seconds(2))
                    return (write, ContinuousClock.now - started)
                }
                #expect(write.locked == [ids[1]])
                #expect(write.recorded.map(\.id).sorted() == [ids[0], ids[2]].sorted())
                #expect(write.recorded.allSatisfy { $0.outcome == .succeeded })
                #expect(waited < .seconds(5), "waited \(waited): the lock wait is a second")
                #expect(try await Integration.WorkerServicesTests.states(client, prefix) == ["succeeded", "running", "succeeded"])
                // The lock gone, the locked one is written; each payment posted once.
                let again = try await store.complete([batch[1]], fence: .lease(owner: owner), margin: .seconds(2))
                #expect(again.recorded.map(\.id) == [ids[1]] && again.locked.isEmpty)
                let postings = try await client.query("""
                    SELECT count(*) FROM ledger_entries WHERE job_id IN (\(ids[0]), \(ids[1]), \(ids[2]))
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode(Int64.self) }
                #expect(postings == [6], "one debit and one credit each")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
