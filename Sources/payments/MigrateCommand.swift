import ArgumentParser
import Foundation
import PaymentsCore

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending migrations through pgbouncer-write (safe to run concurrently).")

    @OptionGroup var db: DatabaseOptions

    @Option(name: .customLong("migrations-dir"), help: "Folder of NNNN_name.sql files (default: the ones built into payments).")
    var migrationsDir: String?

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.migrate")
            let database = try db.makeDatabase(logger: logger, writePool: 2, readPool: 1)
            let migrations = try migrationsDir.map { try Migration.load(from: URL(fileURLWithPath: $0)) } ?? Migration.embedded()
            try await database.checkReachable()
            let report = try await database.run {
                try await Migrator(client: database.write, logger: logger).migrate(migrations)
            }
            if report.applied.isEmpty {
                print("schema up to date (\(report.alreadyApplied) migrations already applied)")
            } else {
                print("applied \(report.applied.count) migrations: \(report.applied.joined(separator: ", ")); \(report.alreadyApplied) already applied")
            }
        }
    }
}
