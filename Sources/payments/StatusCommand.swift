import ArgumentParser
import Foundation
import Logging
import PaymentsCore

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Counts by state, throughput over the last minute, replica lag, and which node answers reads.")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Status reads through pgbouncer-read to sample which replicas answer.") var reads: Int = 20

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.status").with(level: .error)
            let database = try db.makeDatabase(logger: logger, writePool: 2, readPool: 4)
            try await database.checkReachable(write: true, read: true)
            try await database.run {
                let stats = try await QueueStats.collect(database, logger: logger)
                print("jobs by state:")
                for state in ["queued", "running", "succeeded", "failed", "cancelled"] {
                    print("  \(state.padding(toLength: 10, withPad: " ", startingAt: 0)) \(stats.countsByState[state, default: 0].grouped)")
                }
                print("finished in the last minute: \(stats.finishedLastMinute.grouped) (\(String(format: "%.1f", stats.jobsPerSecondLastMinute)) jobs/s)")
                print("replicas (from the primary):")
                if stats.replicas.isEmpty { print("  none streaming!") }
                for r in stats.replicas {
                    print("  \(r.name): \(r.state), replay lag \(r.replayLagBytes ?? 0) bytes, \(String(format: "%.3f", r.replayLagSeconds ?? 0)) s")
                }
                // Which nodes answer reads through pgbouncer-read right now.
                let service = PaymentService(database: database, readFallback: false, logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<min(max(reads, 0), 1_000) {
                        group.addTask { _ = try await service.job(id: 1, freshnessToken: nil) }
                    }
                    try await group.waitForAll()
                }
                let served = service.readCounts.snapshot.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                print("reads through pgbouncer-read answered by: \(served.joined(separator: ", "))")
            }
        }
    }
}
