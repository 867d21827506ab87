import ArgumentParser
import Foundation
import PaymentsBench
import PaymentsCore

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure the application beside ceilings of the same topology in the same run (pgbench, COPY, the in-process path).",
        discussion: """
            Phases, in order: ceilings (pgbench single-row UPDATE, the status function and SELECT 1 through the poolers), \
            enqueue (against COPY of the same rows), drain (through payments gateway at latency 0 and in-process, the better of two turns each; then with a connection per call), latency \
            (enqueue --rate at a tenth and half of the drain through a 20 ms gateway, HDR percentiles and where the time goes), \
            reads (wrk on GET /v1/payments/{id}), inflight (100,000 jobs held at once: memory and server connections). \
            Starts every serve and gateway it needs and stops each by its PID; discards the jobs it enqueued.
            """)

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Comma-separated phases (\(BenchSettings.Phase.allCases.map(\.rawValue).joined(separator: ", "))).")
    var phases: String = BenchSettings.Phase.allCases.map(\.rawValue).joined(separator: ",")
    @Flag(help: "Scaled-down sizes (about three minutes; CI).") var quick = false
    @Option(name: .customLong("latency-seconds"), help: "Length of each paced latency run (default: 60; 10 with --quick).")
    var latencySeconds: Int?
    @Option(name: .customLong("port-offset"), help: "The topology's port offset: the bench's serve listens on 8130 + it, its gateway on 8135 + it.")
    var portOffset: Int = Int(ProcessInfo.processInfo.environment["PORT_OFFSET"] ?? "0") ?? 0
    @Flag(help: "Print the report as JSON on standard output (the table goes to standard error).") var json = false
    @Option(help: "An earlier run's --json output: print each figure's ratio to it.") var compare: String?
    @Option(help: "Also write the report as JSON to this file.") var output: String?

    func validate() throws {
        for name in phases.split(separator: ",") where BenchSettings.Phase(rawValue: String(name)) == nil {
            throw ValidationError("unknown phase '\(name)'; phases are \(BenchSettings.Phase.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let latencySeconds, !(1...3_600).contains(latencySeconds) { throw ValidationError("--latency-seconds must be from 1 to 3,600") }
        guard (0...50_000).contains(portOffset) else { throw ValidationError("--port-offset must be from 0 to 50,000") }
        if let compare, (try? Self.readReport(compare)) == nil {
            throw ValidationError("--compare \(compare): not a report written by payments bench --json")
        }
    }

    static func readReport(_ path: String) throws -> BenchReport {
        try JSONDecoder().decode(BenchReport.self, from: try Data(contentsOf: URL(fileURLWithPath: path)))
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.bench")
            let (write, read) = try db.urls()
            let binary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
            var settings = BenchSettings(binary: binary, writeURL: write, readURL: read, portOffset: portOffset, quick: quick,
                                         commit: ProcessInfo.processInfo.environment["PAYMENTS_COMMIT"] ?? Self.gitCommit())
            settings.phases = BenchSettings.Phase.allCases.filter { phases.split(separator: ",").map(String.init).contains($0.rawValue) }
            if let latencySeconds { settings.latencySeconds = latencySeconds }
            let report = try await BenchRunner(settings, logger: logger).run()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(report)
            if let output { try data.write(to: URL(fileURLWithPath: output)) }
            var text = report.table()
            if let compare { text += "\n\n" + report.comparison(to: try Self.readReport(compare)) }
            if json {
                FileHandle.standardError.write(Data((text + "\n").utf8))
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(text)
            }
        }
    }

    /// The checkout's commit (with "-dirty" when it has changes), or "unknown".
    static func gitCommit() -> String {
        func git(_ args: [String]) -> String? {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/git")
            process.arguments = args
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return nil }
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) : nil
        }
        guard let commit = git(["rev-parse", "--short", "HEAD"]) else { return "unknown" }
        return (git(["status", "--porcelain", "--untracked-files=no"])?.isEmpty ?? true) ? commit : "\(commit)-dirty"
    }
}
