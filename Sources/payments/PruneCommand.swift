import ArgumentParser
import Foundation
import PaymentsCore

struct PruneCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Move failed and cancelled jobs older than the retention period to payment_jobs_archive.",
        discussion: "Succeeded jobs stay: the ledger references them. An archived payment keeps its idempotency key: it is answered, never created again.")

    @OptionGroup var db: DatabaseOptions

    @Option(name: .customLong("older-than-days"), help: "Retention period in days (finished before now minus this).")
    var olderThanDays: Double = 30
    @Option(name: .customLong("batch-size"), help: "Jobs moved per statement.") var batchSize: Int = 5_000
    @Flag(name: .customLong("dry-run"), help: "Only count what would be moved.") var dryRun = false

    func validate() throws {
        guard olderThanDays >= 0, olderThanDays <= 36_500 else { throw ValidationError("--older-than-days must be from 0 to 36,500") }
        guard (1...100_000).contains(batchSize) else { throw ValidationError("--batch-size must be from 1 to 100,000") }
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.prune")
            let database = try db.makeDatabase(logger: logger, writePool: 1, readPool: 1)
            try await database.checkReachable()
            let n = try await database.run {
                try await Retention(client: database.write, logger: logger)
                    .prune(olderThan: .seconds(olderThanDays * 86_400), batchSize: batchSize, dryRun: dryRun)
            }
            print(dryRun ? "would archive \(n.grouped) failed or cancelled jobs" : "archived \(n.grouped) failed or cancelled jobs")
        }
    }
}
