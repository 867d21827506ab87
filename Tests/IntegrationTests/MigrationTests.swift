import Foundation
import PaymentsCore
import PostgresNIO
import Testing

extension Integration {
    @Suite struct MigrationTests {
        @Test func migrateAppliesOnceThenIsANoOp() async throws {
            try await TestEnvironment.migrate()
            let second = try await TestEnvironment.run(["migrate"])
            #expect(second.status == 0)
            #expect(second.stdout.contains("schema up to date"), "\(second.stdout)")
            let versions = try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM schema_migrations")
            #expect(versions == (try Migration.embedded()).count)
        }

        /// Every server connection the poolers hold runs with the application role's
        /// settings (statement_timeout 60 s, JIT off), including those `payments migrate`
        /// opened before the migrations that also set them (0005, 0008) had run: a session
        /// reads its role's settings when it starts, and the poolers keep a server
        /// connection for up to an hour. Transactions held open together through each
        /// pooler, as many as its pool and its reserve hold (16 + 4; a client waiting a
        /// second gets a reserve connection), take every server connection it may hold.
        /// It catches the defect on a topology just made and migrated; later in a run the
        /// early connections may have been closed already (server_idle_timeout).
        @Test func everyPooledServerConnectionHasTheRolesSettings() async throws {
            try await TestEnvironment.migrate()
            for url in [TestEnvironment.writeURL, TestEnvironment.readURL] {
                let sessions = try await TestEnvironment.withClient(url, maxConnections: 20) { client in
                    try await withThrowingTaskGroup(of: [String].self) { group in
                        for _ in 0..<20 {
                            group.addTask {
                                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                                    let row = try await connection.query(
                                        "SELECT pg_backend_pid()::text, current_setting('statement_timeout'), current_setting('jit'), pg_sleep(2.5)::text",
                                        logger: TestEnvironment.logger).collect()
                                    let (pid, timeout, jit, _) = try row[0].decode((String, String, String, String).self)
                                    return [pid, timeout, jit]
                                }
                            }
                        }
                        return try await group.reduce(into: []) { $0.append($1) }
                    }
                }
                #expect(Set(sessions.map { $0[0] }).count == 20, "\(url): 20 transactions held together, \(Set(sessions.map { $0[0] }).count) server connections")
                for session in sessions {
                    #expect(session[1] == "1min" && session[2] == "off", "\(url): server connection \(session[0]): statement_timeout \(session[1]), jit \(session[2])")
                }
            }
        }

        /// Two migrators at the same moment on an empty schema: one applies each file, the
        /// other waits on the advisory lock and finds it applied.
        @Test func concurrentMigrationsLeaveOneCorrectSchema() async throws {
            let schema = "mtest_\(UInt32.random(in: 0 ... .max))"
            let migrations = try Migration.embedded()
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 4) { client in
                try await client.query(PostgresQuery(unsafeSQL: "CREATE SCHEMA \(schema)"), logger: TestEnvironment.logger)
                defer { Task { try? await TestEnvironment.withClient(TestEnvironment.writeURL) { c in
                    try await c.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE"), logger: TestEnvironment.logger) } } }
                let reports = try await withThrowingTaskGroup(of: Migrator.Report.self) { group in
                    for _ in 0..<2 {
                        group.addTask {
                            try await Migrator(client: client, logger: TestEnvironment.logger, schema: schema).migrate(migrations)
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                #expect(reports.map(\.applied.count).reduce(0, +) == migrations.count)
                #expect(reports.map(\.alreadyApplied).reduce(0, +) == migrations.count)
                let applied = try await Migrator(client: client, logger: TestEnvironment.logger, schema: schema).appliedVersions()
                #expect(applied == migrations.map(\.version))
                for try await (tables) in try await client.query(
                    """
                    SELECT count(*)::int8 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = \(schema) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
                    """, logger: TestEnvironment.logger).decode(Int64.self) {
                    // currencies, payment_queue, payment_keys, payment_history (and its partitions),
                    // payment_history_totals, ledger_entries, payment_jobs_archive, schema_migrations
                    #expect(tables == 8)
                }
                try await client.query(PostgresQuery(unsafeSQL: "DROP SCHEMA \(schema) CASCADE"), logger: TestEnvironment.logger)
            }
        }

        /// What the half-load tail depends on (docs/benchmarks.md, 2026-12-06): the queue's
        /// vacuum never truncates it (its lock stalled claims and the standbys' replay), the
        /// standbys report their horizon every second (at 10 s the queue's dead rows could
        /// not be removed for seconds, and claims walked them), WAL images are compressed
        /// with lz4 and checkpoints are not forced by WAL volume every minute.
        @Test func theQueueAndTheNodesKeepTheirLatencySettings() async throws {
            try await TestEnvironment.migrate()
            let keepsPages = try await TestEnvironment.scalar(TestEnvironment.writeURL, """
                SELECT count(*) FROM pg_class WHERE oid = 'payment_queue'::regclass AND 'vacuum_truncate=false' = ANY(reloptions)
                """)
            #expect(keepsPages == 1)
            func setting(_ url: DatabaseURL, _ name: String) async throws -> String {
                try await TestEnvironment.withClient(url, maxConnections: 1) { client in
                    for try await (value) in try await client.query("SELECT current_setting(\(name))", logger: TestEnvironment.logger)
                        .decode(String.self) { return value }
                    return ""
                }
            }
            #expect(try await setting(TestEnvironment.primaryURL, "wal_compression") == "lz4")
            #expect(try await setting(TestEnvironment.primaryURL, "max_wal_size") == "8GB")
            for replica in TestEnvironment.replicaURLs {
                #expect(try await setting(replica, "wal_receiver_status_interval") == "1s")
            }
        }

        /// schema.sql, the schema to read in one place, is what the migrations build from
        /// nothing (`scripts/schema --check` migrates a scratch database and compares its
        /// pg_dump); a migration without its schema.sql, or the reverse, fails here.
        @Test func schemaFileIsWhatTheMigrationsBuild() async throws {
            let result = try await TestEnvironment.run(["--port-offset", "\(TestEnvironment.portOffset)", "--check"],
                                                       environment: ["PAYMENTS_BIN": TestEnvironment.binary.path],
                                                       executable: TestEnvironment.repoRoot.appendingPathComponent("scripts/schema").path)
            #expect(result.status == 0, "\(result.stderr)\n\(result.stdout.prefix(4000))")
        }

        /// The queue's indexes and constraints are named for it (migration 0016), not for
        /// the table it was before migration 0006.
        @Test func theQueuesIndexesCarryItsName() async throws {
            try await TestEnvironment.migrate()
            let stale = try await TestEnvironment.scalar(TestEnvironment.writeURL, """
                SELECT (SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                        WHERE i.indrelid = 'payment_queue'::regclass AND c.relname LIKE 'payment\\_jobs\\_%')
                     + (SELECT count(*) FROM pg_constraint WHERE conrelid = 'payment_queue'::regclass AND conname LIKE 'payment\\_jobs\\_%')
                """)
            #expect(stale == 0)
        }

        @Test func aFailingMigrationRollsBackWholeAndNamesTheFile() async throws {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bad-migrations-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let table = "rollback_probe_\(UInt32.random(in: 0 ... .max))"
            // Same versions as the shipped files are already applied; this one is new.
            try "CREATE TABLE \(table) (x int);\nSELECT 1/0;".write(to: dir.appendingPathComponent("9999_broken.sql"), atomically: true, encoding: .utf8)
            let result = try await TestEnvironment.run(["migrate", "--migrations-dir", dir.path])
            #expect(result.status != 0)
            #expect(result.stderr.contains("9999_broken.sql"), "\(result.stderr)")
            #expect(result.stderr.contains("division by zero"), "\(result.stderr)")
            #expect(!result.stderr.contains("Fatal error"))
            let exists = try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM pg_tables WHERE tablename = \(table)")
            #expect(exists == 0)
            let recorded = try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM schema_migrations WHERE version = '9999'")
            #expect(recorded == 0)
        }
    }
}
