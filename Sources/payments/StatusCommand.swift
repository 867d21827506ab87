import ArgumentParser
import Foundation
import Logging
import PaymentsCore
import PaymentsHTTP

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Counts by state, throughput over the last minute, replica lag, which node answers reads, and how far apart the clocks are.")

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Probes through pgbouncer-read (0 to 1,000) to sample which nodes answer reads.") var reads: Int = 20
    @Option(name: .customLong("gateway-url"), help: "The payment gateway whose clock to compare (env GATEWAY_URL).")
    var gatewayURL: String? = ProcessInfo.processInfo.environment["GATEWAY_URL"].flatMap { $0.isEmpty ? nil : $0 }
    @Option(name: .customLong("backup-repo"), help: "A pgBackRest repository to report the last backup of (env BACKUP_REPO_DIR).")
    var backupRepo: String? = ProcessInfo.processInfo.environment["BACKUP_REPO_DIR"].flatMap { $0.isEmpty ? nil : $0 }
    @Option(name: .customLong("serve"), help: "A serve's base URL whose clock to compare (repeatable; env SERVE_URLS, space-separated).")
    var serves: [String] = (ProcessInfo.processInfo.environment["SERVE_URLS"] ?? "").split(separator: " ").map(String.init)

    func validate() throws {
        guard (0...1_000).contains(reads) else { throw ValidationError("--reads must be from 0 to 1,000, got \(reads)") }
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.status").with(level: .error)
            let database = try db.makeDatabase(logger: logger, writePool: 2, readPool: 4)
            try await database.checkReachable(write: true, read: true)
            try await database.run {
                let router = ReadRouter(database: database, fallback: true, logger: logger)
                let stats = try await QueueStats.collect(router, logger: logger)
                print("jobs by state (read on \(stats.countsServedBy)):")
                for state in JobState.allCases {
                    var line = "  \(state.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(stats.count(state).grouped)"
                    if state == .reconciling, let held = stats.countsByState["held"], held > 0 {
                        line += " (\(held.grouped) held for an operator)"
                    }
                    if state == .failed {
                        let reasons = stats.failedByReason.filter { $0.value > 0 }.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.grouped)" }
                        if !reasons.isEmpty { line += " (\(reasons.joined(separator: ", ")))" }
                    }
                    print(line)
                }
                if !stats.held.isEmpty {
                    print("held for an operator (reconciling, not asked about again; see docs/faults.md's runbook):")
                    for h in stats.held {
                        print("  payment \(h.id): \(h.reason.rawValue) since \(h.since): \(h.detail ?? "")")
                    }
                }
                print("finished in the last minute: \(stats.finishedLastMinute.grouped) (\(String(format: "%.1f", stats.jobsPerSecondLastMinute)) jobs/s)")
                print("replicas (from the primary):")
                if stats.replicas.isEmpty { print("  none streaming!") }
                for r in stats.replicas {
                    print("  \(r.name): \(r.state), replay lag \(r.replayLagBytes ?? 0) bytes, \(String(format: "%.3f", r.replayLagSeconds ?? 0)) s")
                }
                if let archive = try? await ArchiveHealth.read(database.write, logger: logger) {
                    print("WAL archive (the primary's pg_stat_archiver): \(archive.summary)")
                }
                if let repository = backupRepo {
                    do {
                        print("last backup (\(repository)): \(try LastBackup.read(repository: repository)?.summary() ?? "none yet")")
                    } catch { print("last backup: \(error)") }
                }
                try await printClocks(router)
                guard reads > 0 else { return }
                // Which nodes answer reads through pgbouncer-read right now: each probe asks
                // the answering node who it is (concurrently, so the pooler spreads them).
                let probes = ReadCounters()
                let probe = ReadRouter(database: database, fallback: false, counts: probes, logger: logger)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for _ in 0..<reads { group.addTask { _ = try await probe.identifyReadNode() } }
                    try await group.waitForAll()
                }
                let served = probes.snapshot.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
                print("reads through pgbouncer-read answered by: \(served.joined(separator: ", "))")
            }
        }
    }

    /// Every clock the deadlines depend on, against this machine's: the primary, each
    /// replica that answers a read, the gateway and the serves given. A clock that cannot
    /// be read is named, not skipped.
    func printClocks(_ router: ReadRouter) async throws {
        var readings: [ClockReading] = []
        var unread: [String] = []
        do { readings.append(try await router.primaryClock()) } catch { unread.append("primary: \(describe(error))") }
        // Several reads at once, to meet each replica (the pooler spreads concurrent reads
        // only); the tightest reading per node is kept.
        var best: [String: ClockReading] = [:]
        await withTaskGroup(of: ClockReading?.self) { group in
            for _ in 0..<8 { group.addTask { try? await router.readNodeClock() } }
            for await reading in group {
                guard let r = reading else { continue }
                if let old = best[r.name], old.uncertaintySeconds <= r.uncertaintySeconds { continue }
                best[r.name] = r
            }
        }
        readings += best.values.sorted { $0.name < $1.name }
        if let gatewayURL {
            do { readings.append(try await ClockProbe.read("gateway", baseURL: gatewayURL)) } catch { unread.append("gateway: \(describe(error))") }
        }
        for url in serves {
            do { readings.append(try await ClockProbe.read("serve \(url)", baseURL: url)) } catch { unread.append("serve \(url): \(describe(error))") }
        }
        print("clocks (offset from this machine; deadlines assume every pair within \(Int(ClockSkew.margin)) s):")
        for line in ClockSkew.report(readings, local: "this machine") { print(line) }
        for line in unread { print("  not read: \(line)") }
    }
}
