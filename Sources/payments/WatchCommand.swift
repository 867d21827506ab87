import ArgumentParser
import Foundation
import Logging
import PaymentsCore
import PaymentsProof

/// The demo's live view and proof: progress until every job of a run is terminal, status
/// reads through pgbouncer-read meanwhile, then the money invariants and the figures,
/// one PASS/FAIL line each (exit 1 on any FAIL).
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "watch",
        abstract: "Follow a run (jobs with one key prefix) to the end, then prove it correct.")

    @OptionGroup var db: DatabaseOptions

    @Option(name: .customLong("key-prefix"), help: "The run's idempotency-key prefix (as given to enqueue).") var keyPrefix: String
    @Option(help: "Jobs expected in the run.") var count: Int
    @Option(name: .customLong("gateway-journal"), help: "Simulated gateway journal(s) of the servers that ran.") var gatewayJournal: [String] = []
    @Option(help: "Give up after this many seconds.") var timeout: Double = 600
    @Option(name: .customLong("reads-per-tick"), help: "Status reads through pgbouncer-read per 200 ms.") var readsPerTick: Int = 10
    @Option(name: .customLong("enqueue-rate"), help: "Enqueue jobs/s to print in the summary (from the enqueue step).") var enqueueRate: Double?
    @Option(name: .customLong("expect-replicas"), help: "Replicas that must have served reads.") var expectReplicas: Int = 2
    @Flag(name: .customLong("allow-budget-failures"), help: "The run's faults outlast the retry budget: payments failed as budget_exhausted pass the proof (never otherwise).")
    var allowBudgetFailures = false

    func validate() throws {
        guard count > 0 else { throw ValidationError("--count must be positive") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
        guard (0...1_000).contains(readsPerTick) else { throw ValidationError("--reads-per-tick must be from 0 to 1,000") }
        guard expectReplicas >= 0 else { throw ValidationError("--expect-replicas must not be negative") }
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.watch").with(level: .error)
            let database = try db.makeDatabase(logger: logger, writePool: 2, readPool: 4)
            let passed = try await database.run { try await watch(database, logger: logger) }
            if !passed { throw ExitCode.failure }
        }
    }

    func watch(_ database: Database, logger: Logger) async throws -> Bool {
        let reads = PaymentReads(router: ReadRouter(database: database, fallback: true, logger: logger))
        let display = ProgressDisplay(label: "processed")
        let clock = ContinuousClock()
        let start = clock.now
        var peakConnections = 0, peakInFlight = 0
        var maxLagBytes: Int64 = 0
        var maxLagSeconds = 0.0
        var readErrors = 0
        var ids: [Int64] = []
        var progress = RunProgress()
        var lastLine = clock.now - .seconds(10)
        while true {
            progress = try await RunProgress.sample(database, keyPrefix: keyPrefix, logger: logger)
            peakConnections = max(peakConnections, progress.serverConnections)
            peakInFlight = max(peakInFlight, progress.running)
            maxLagBytes = max(maxLagBytes, progress.maxReplicaLagBytes)
            maxLagSeconds = max(maxLagSeconds, progress.maxReplicaLagSeconds)
            if ids.isEmpty { ids = try await sampleJobIDs(database, keyPrefix: keyPrefix, limit: 1_000, logger: logger) }
            for _ in 0..<readsPerTick {
                guard let id = ids.randomElement() else { break }
                do { _ = try await reads.job(id: id, freshnessToken: nil) } catch { readErrors += 1 }
            }
            let elapsed = clock.now - start
            display.update(done: progress.terminal, total: count, elapsed: elapsed)
            if clock.now - lastLine >= .seconds(2) || progress.terminal >= count {
                lastLine = clock.now
                FileHandle.standardError.write(Data((" in flight \(progress.running), queued \(progress.queued), reconciling \(progress.reconciling), succeeded \(progress.succeeded), failed \(progress.failed), retries \(progress.retries)\n").utf8))
            }
            if progress.total >= count && progress.terminal >= progress.total { break }
            if elapsed.seconds > timeout { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        display.finish()

        let report = try await Invariants.check(database.write, keyPrefix: keyPrefix, journals: gatewayJournal,
                                                  allowBudgetFailures: allowBudgetFailures, logger: logger)
        let figures = try await RunFigures.measure(database, keyPrefix: keyPrefix, logger: logger)
        let served = reads.router.counts.snapshot
        let replicasServing = reads.router.counts.replicaNodes.count
        var lines: [(Bool, String)] = report.checks.map { check in (check.passed, "\(check.name): \(check.detail)") }
        lines.append((progress.total == count, "all \(count) jobs enqueued: \(progress.total) found"))
        let servedText = served.sorted { $0.key < $1.key }.map { entry in "\(entry.key) \(entry.value)" }.joined(separator: ", ")
        let failedText = readErrors > 0 ? " (\(readErrors) failed)" : ""
        if readsPerTick > 0 {
            lines.append((replicasServing >= expectReplicas, "status reads served by both replicas: \(servedText)\(failedText)"))
        }
        print("")
        for (ok, text) in lines { print("\(ok ? "PASS" : "FAIL")  \(text)") }
        print("INFO  largest replica lag seen: \(maxLagBytes) bytes, \(String(format: "%.3f", maxLagSeconds)) s")
        print("INFO  PostgreSQL server connections (peak, db_user on the primary): \(peakConnections) for up to \(peakInFlight) jobs in flight")
        if let enqueueRate { print("INFO  enqueue: \(Int(enqueueRate).grouped) jobs/s") }
        print("INFO  processing: \(figures.jobs.grouped) jobs in \(String(format: "%.2f", figures.seconds)) s = \(Int(figures.jobsPerSecond).grouped) jobs/s; "
            + "enqueue-to-completion p50 \(ms(figures.p50)), p95 \(ms(figures.p95)), p99 \(ms(figures.p99))")
        print("INFO  succeeded \(progress.succeeded.grouped), failed \(progress.failed.grouped), retries \(progress.retries.grouped)")
        return lines.allSatisfy { line in line.0 }
    }

    func ms(_ seconds: Double) -> String { "\(Int((seconds * 1000).rounded())) ms" }
}
