import Foundation
import PaymentsCore
import Testing

extension Integration {
    /// The topology archives the primary's WAL (pgBackRest); a failing archive_command is
    /// seen as failing, and healed once it works again.
    @Suite struct ArchiveHealthIntegrationTests {
        static func health() async throws -> ArchiveHealth? {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await ArchiveHealth.read(client, logger: TestEnvironment.logger)
            }
        }

        static func superSQL(_ sql: String) async throws {
            let result = try await TestEnvironment.topology(["psql", "super", "primary", "-tAc", sql])
            try #require(result.status == 0, "\(sql): \(result.stderr)")
        }

        @Test func aFailingArchiveIsSeenAndItsHealingToo() async throws {
            let before = try #require(try await Self.health())
            #expect(before.mode == "on", "the topology archives: \(before.summary)")
            let failedBefore = before.failed
            try await Self.superSQL("ALTER SYSTEM SET archive_command = '/bin/false'")
            do {
                try await Self.superSQL("SELECT pg_reload_conf()")
                try await TestEnvironment.eventually("archiving fails", timeout: .seconds(30)) {
                    try await Self.superSQL("CREATE TEMP TABLE t AS SELECT 1; SELECT pg_switch_wal()")
                    return (try await Self.health())?.failed ?? 0 > failedBefore
                }
                #expect(try await Self.health()?.isFailing == true)
            } catch {
                try? await Self.superSQL("ALTER SYSTEM RESET archive_command")
                try? await Self.superSQL("SELECT pg_reload_conf()")
                throw error
            }
            try await Self.superSQL("ALTER SYSTEM RESET archive_command")
            try await Self.superSQL("SELECT pg_reload_conf()")
            try await TestEnvironment.eventually("archiving heals", timeout: .seconds(90)) {
                (try await Self.health())?.isFailing == false
            }
        }
    }
}
