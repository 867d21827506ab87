import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PaymentsCore
import PostgresNIO

/// What `payments bench` measures and how big each measure is.
public struct BenchSettings: Sendable {
    public enum Phase: String, Sendable, CaseIterable {
        case ceilings, enqueue, drain, latency, reads, inflight
    }

    /// The `payments` binary whose serve and gateway are measured (this one by default).
    public var binary: String
    public var writeURL: DatabaseURL
    public var readURL: DatabaseURL
    public var portOffset: Int
    public var phases: [Phase] = Phase.allCases
    /// Scaled-down sizes (CI): the same phases in about three minutes.
    public var quick = false
    /// How long each paced latency run lasts.
    public var latencySeconds: Int
    public var commit: String

    public init(binary: String, writeURL: DatabaseURL, readURL: DatabaseURL, portOffset: Int, quick: Bool, commit: String) {
        self.binary = binary
        self.writeURL = writeURL
        self.readURL = readURL
        self.portOffset = portOffset
        self.quick = quick
        self.latencySeconds = quick ? 10 : 60
        self.commit = commit
    }

    var ceilingSeconds: Int { quick ? 3 : 10 }
    var enqueueCount: Int { quick ? 20_000 : 100_000 }
    var drainCount: Int { quick ? 10_000 : 50_000 }
    var drainRounds: Int { quick ? 1 : 2 }
    var readSeconds: Int { quick ? 3 : 10 }
    var inflightCount: Int { quick ? 20_000 : 100_000 }
    var servePort: Int { 8130 + portOffset }
    var gatewayPort: Int { 8135 + portOffset }
}

/// Runs the phases of `payments bench` against the local topology: every figure of the
/// application beside a ceiling measured in the same run through the same pooler. It
/// starts every serve and gateway it needs and stops each by its PID; the jobs it
/// enqueues are discarded when each phase ends.
public final class BenchRunner: Sendable {
    let settings: BenchSettings
    let logger: Logger
    let progress: Progress
    let workDir: String

    public init(_ settings: BenchSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.progress = Progress()
        self.workDir = FileManager.default.temporaryDirectory.appendingPathComponent("payments-bench-\(getpid())").path
    }

    public func run() async throws -> BenchReport {
        // Every tool the chosen phases run, before the first: a missing wrk found after
        // minutes of other phases lost their figures with it.
        for tool in Self.tools(for: settings.phases) where ChildProcess.which(tool) == nil { throw BenchError.missingTool(tool) }
        try FileManager.default.createDirectory(atPath: workDir, withIntermediateDirectories: true)
        var report = BenchReport(date: ISO8601DateFormatter().string(from: Date()), commit: settings.commit,
                                 cores: ProcessInfo.processInfo.activeProcessorCount, quick: settings.quick)
        let client = PostgresClient(configuration: settings.writeURL.clientConfiguration(maxConnections: 2), backgroundLogger: logger)
        // Not a child task: twice (2026-12-06, at 2ed3793 and 3ccf858) a full run ended with
        // every figure measured and the process waiting forever for client.run() to return
        // after its cancel, no connection and no task left. The bench exits when it is done.
        let clientRun = Task { await client.run() }
        defer { clientRun.cancel() }
        try await Task.sleep(for: .milliseconds(10))  // client.run() first: leases before it only warn and wait
        let sql = BenchSQL(client: client, logger: logger)
        try await sql.discardOpenJobs()
        for phase in settings.phases {
            progress.phase(phase.rawValue)
            let figures: [BenchFigure]
            switch phase {
            case .ceilings: figures = try await ceilings(sql)
            case .enqueue: figures = try await enqueue(sql)
            case .drain: figures = try await drain(sql)
            case .latency: figures = try await latency(sql, drain: report.figure(Names.drainExternal)?.value)
            case .reads: figures = try await reads(sql)
            case .inflight: figures = try await inflight(sql)
            }
            report.figures += figures
            progress.update("discarding the phase's open jobs")
            try await sql.discardOpenJobs()
        }
        progress.done()
        try? FileManager.default.removeItem(atPath: workDir)
        return report
    }

    /// The programs besides this binary that `phases` run.
    static func tools(for phases: [BenchSettings.Phase]) -> [String] {
        var tools: [String] = []
        if phases.contains(.ceilings) { tools.append("pgbench") }
        if phases.contains(.enqueue) { tools.append("psql") }
        if phases.contains(.reads) { tools.append("wrk") }
        return tools
    }

    /// Figure names shared by the phases that compare with them.
    enum Names {
        static let update = "pgbench single-row UPDATE via pgbouncer-write (TPS)"
        static let statusFunction = "pgbench payment_status() via pgbouncer-read (TPS)"
        static let select1 = "pgbench SELECT 1 via pgbouncer-read (TPS)"
        static let copy = "COPY of the same rows via pgbouncer-write (rows/s)"
        static let drainExternal = "drain through payments gateway, latency 0 (jobs/s)"
        static let drainInProcess = "drain with the in-process gateway, latency 0 (jobs/s)"
    }

    // MARK: ceilings

    func ceilings(_ sql: BenchSQL) async throws -> [BenchFigure] {
        try await sql.execute("""
            CREATE TABLE IF NOT EXISTS bench_ceiling (id int PRIMARY KEY, v bigint NOT NULL DEFAULT 0);
            INSERT INTO bench_ceiling (id) SELECT g FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING
            """)
        let update = try await pgbench(settings.writeURL, "\\set id random(1, 1000)\nUPDATE bench_ceiling SET v = v + 1 WHERE id = :id;")
        let select1 = try await pgbench(settings.readURL, "SELECT 1;")
        // Finished payments: what the replicas answer for (a history the drain phase filled).
        let (lo, hi) = try await sql.idRange()
        let status = try await pgbench(settings.readURL, "\\set id random(\(lo), \(hi))\nSELECT * FROM payment_status(:id, NULL);")
        return [
            BenchFigure(phase: "ceilings", name: Names.update, value: update, unit: "TPS"),
            BenchFigure(phase: "ceilings", name: Names.statusFunction, value: status, unit: "TPS"),
            BenchFigure(phase: "ceilings", name: Names.select1, value: select1, unit: "TPS"),
        ]
    }

    /// TPS of `script` through `url`'s pooler: 16 clients, simple protocol (as through
    /// transaction pooling), `ceilingSeconds`.
    func pgbench(_ url: DatabaseURL, _ script: String) async throws -> Double {
        guard let pgbench = ChildProcess.which("pgbench") else { throw BenchError.missingTool("pgbench") }
        let file = "\(workDir)/script-\(UUID().uuidString).sql"
        try script.write(toFile: file, atomically: true, encoding: .utf8)
        progress.update("pgbench \(script.split(separator: "\n").last ?? "") for \(settings.ceilingSeconds) s")
        let out = try await ChildProcess.output(pgbench, [
            "-n", "-M", "simple", "-h", url.host, "-p", "\(url.port)", "-U", url.user, "-c", "16", "-j", "2",
            "-T", "\(settings.ceilingSeconds)", "-f", file, url.database,
        ], environment: ["PGPASSWORD": url.password ?? ""])
        guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("tps = ") }),
              let tps = Double(line.dropFirst(6).split(separator: " ").first ?? "") else {
            throw BenchError.commandFailed("pgbench printed no tps: \(out.suffix(300))")
        }
        return tps.rounded()
    }

    // MARK: enqueue

    func enqueue(_ sql: BenchSQL) async throws -> [BenchFigure] {
        let n = settings.enqueueCount
        progress.update("payments enqueue --count \(n)")
        let out = try await payments(["enqueue", "--count", "\(n)", "--key-prefix", "be-\(UInt32.random(in: 0 ... .max))"])
        // "enqueued 100,000 jobs: 100,000 new, 0 duplicates, 1.13 s, 88,619 jobs/s"
        let rate = out.split(separator: "\n").compactMap { line -> Double? in
            guard let r = line.range(of: " jobs/s") else { return nil }
            let number = line[..<r.lowerBound].split(separator: " ").last.map { $0.replacingOccurrences(of: ",", with: "") }
            return number.flatMap(Double.init)
        }.last ?? 0
        try await sql.discardOpenJobs()
        progress.update("COPY of \(n) rows")
        let copy = try await copyCeiling(sql, count: n)
        return [
            BenchFigure(phase: "enqueue", name: "payments enqueue --count \(n) (jobs/s)", value: rate, unit: "jobs/s", ceiling: Names.copy),
            BenchFigure(phase: "enqueue", name: Names.copy, value: copy, unit: "rows/s"),
        ]
    }

    /// COPY of `count` generated payments into payment_keys and payment_queue, one
    /// transaction through pgbouncer-write (psql's \copy): no conflict check, no catalog
    /// join, so an upper bound for any way of taking payments in.
    func copyCeiling(_ sql: BenchSQL, count n: Int) async throws -> Double {
        guard let psql = ChildProcess.which("psql") else { throw BenchError.missingTool("psql") }
        let base = try await sql.reserveIDs(n)
        let run = "bc-\(UInt32.random(in: 0 ... .max))"
        let currencies = ["EUR", "USD", "GBP", "JPY", "CHF", "SEK", "PLN"]
        var keys = "", jobs = ""
        keys.reserveCapacity(n * 60)
        jobs.reserveCapacity(n * 100)
        for g in 1...n {
            let (key, amount, c) = ("\(run)-\(g)", 100 + g % 99_900, currencies[g % 7])
            let (debtor, creditor) = ("acct_\(g % 100_000)", "acct_\((g + 7) % 100_000)")
            let fingerprint = "\(amount)|\(c)|\(debtor)|\(creditor)|100|5"
            keys += "\(key)\t\(base + Int64(g))\t\(fingerprint)\n"
            jobs += "\(base + Int64(g))\t\(key)\t\(fingerprint)\t\(amount)\t\(c)\t\(debtor)\t\(creditor)\t100\t5\n"
        }
        try keys.write(toFile: "\(workDir)/keys", atomically: true, encoding: .utf8)
        try jobs.write(toFile: "\(workDir)/jobs", atomically: true, encoding: .utf8)
        let script = """
            BEGIN;
            \\copy payment_keys (idempotency_key, payment_id, request_fingerprint) FROM '\(workDir)/keys'
            \\copy payment_queue (id, idempotency_key, request_fingerprint, amount_minor, currency, debtor, creditor, priority, max_attempts) FROM '\(workDir)/jobs'
            COMMIT;
            """
        try script.write(toFile: "\(workDir)/copy.sql", atomically: true, encoding: .utf8)
        let url = settings.writeURL
        let started = ContinuousClock.now
        _ = try await ChildProcess.output(psql, ["-q", "-v", "ON_ERROR_STOP=1", "-h", url.host, "-p", "\(url.port)", "-U", url.user,
                                                 "-d", url.database, "-f", "\(workDir)/copy.sql"],
                                          environment: ["PGPASSWORD": url.password ?? ""])
        let seconds = (ContinuousClock.now - started).seconds
        return (Double(n) / seconds).rounded()
    }

    // MARK: drain

    func drain(_ sql: BenchSQL) async throws -> [BenchFigure] {
        let n = settings.drainCount
        // The best of `drainRounds` rounds, the two paths taking turns: a drain that shares
        // its seconds with a checkpoint or autovacuum of the runs before it measures them
        // (one round, 2026-12-06: the first drain after the enqueue phase 10,263 jobs/s, the
        // same build alone 13,000-16,600).
        var external = 0.0, inProcess = 0.0
        for _ in 0..<settings.drainRounds {
            external = max(external, try await drainRate(sql, count: n, external: true))
            inProcess = max(inProcess, try await drainRate(sql, count: n, external: false))
        }
        // Beside the default (up to 256 connections, 8 calls on one before the next under load): a connection per
        // call in flight, what a provider that answers a connection's calls one after the
        // other would need; its cost is the reads and writes of the extra connections.
        let perCall = try await drainRate(sql, count: n, external: true, serveArguments: ["--gateway-connections", "\(Self.perCallConnections)", "--gateway-pipeline", "1"])
        // Named as before --gateway-pipeline, so --compare finds earlier runs' figure.
        let perCallName = "the same with --gateway-connections \(Self.perCallConnections), a connection per call in flight (jobs/s)"
        return [
            BenchFigure(phase: "drain", name: Names.drainExternal, value: external, unit: "jobs/s", ceiling: Names.drainInProcess,
                        target: "≥ 0.6x in-process, ≥ 1.0x single-row UPDATE"),
            BenchFigure(phase: "drain", name: "the same, against pgbench single-row UPDATE", value: external, unit: "jobs/s",
                        ceiling: Names.update),
            BenchFigure(phase: "drain", name: perCallName, value: perCall, unit: "jobs/s", ceiling: Names.drainExternal),
            BenchFigure(phase: "drain", name: Names.drainInProcess, value: inProcess, unit: "jobs/s"),
        ]
    }

    /// The drain's jobs in flight (`--concurrency 5000`, claimed 1,000 at a time) need up
    /// to this many connections for one call each.
    static let perCallConnections = 4_096

    /// Enqueues `count` jobs, then starts a serve (and a gateway) and measures first claim
    /// to last completion.
    func drainRate(_ sql: BenchSQL, count: Int, external: Bool, serveArguments: [String] = []) async throws -> Double {
        let prefix = "bd-\(UInt32.random(in: 0 ... .max))"
        try await sql.vacuumWrittenTables()
        _ = try await payments(["enqueue", "--count", "\(count)", "--key-prefix", prefix])
        let serveArgs = ["--concurrency", "5000", "--batch-size", "1000"] + serveArguments
        try await withServe(serveArgs, gatewayLatencyMs: external ? 0 : nil) { serve in
            try await waitDrained(sql, prefix: prefix, total: count, label: external ? "drain through payments gateway" : "drain in-process")
        }
        return try await sql.rate(prefix: prefix, from: .firstClaim)
    }

    // MARK: latency

    func latency(_ sql: BenchSQL, drain measured: Double?) async throws -> [BenchFigure] {
        // The external drain of this run, else a quick one now.
        var drain = measured ?? 0
        if measured == nil { drain = try await drainRate(sql, count: settings.drainCount, external: true) }
        var figures: [BenchFigure] = []
        for (label, fraction, target) in [("a tenth", 10.0, "p50 ≤ 40 ms, p99 ≤ 100 ms"), ("half", 2.0, "p99 ≤ 150 ms")] {
            let rate = max(1, Int(drain / fraction))
            let prefix = "bl-\(UInt32.random(in: 0 ... .max))"
            try await sql.vacuumWrittenTables()
            var stages: [String: [String: Double]] = [:]
            try await withServe(["--concurrency", "5000"], gatewayLatencyMs: 20) { serve in
                progress.update("enqueue --rate \(rate) for \(settings.latencySeconds) s through a 20 ms gateway")
                _ = try await payments(["enqueue", "--count", "\(rate * settings.latencySeconds)", "--rate", "\(rate)", "--key-prefix", prefix])
                try await waitDrained(sql, prefix: prefix, total: rate * settings.latencySeconds, label: "paced at \(rate)/s")
                stages = try await stageSeconds()
            }
            figures += Self.pacedFigures(label: label, offered: rate, processed: try await sql.rate(prefix: prefix, from: .firstEnqueue))
            var histogram = LatencyHistogram()
            histogram.add(try await sql.latencies(prefix: prefix))
            let p = histogram.percentiles([50, 95, 99, 99.9]).map { ($0 * 1000 * 10).rounded() / 10 }
            let name = "enqueue-to-completion at \(label) of the drain (\(rate)/s, 20 ms gateway, \(settings.latencySeconds) s)"
            figures.append(BenchFigure(phase: "latency", name: "\(name) p50", value: p[0], unit: "ms", target: target))
            figures.append(BenchFigure(phase: "latency", name: "\(name) p95", value: p[1], unit: "ms"))
            figures.append(BenchFigure(phase: "latency", name: "\(name) p99", value: p[2], unit: "ms", target: target))
            figures.append(BenchFigure(phase: "latency", name: "\(name) p99.9", value: p[3], unit: "ms"))
            for stage in WorkerMetrics.Stage.allCases {
                guard let q = stages[stage.rawValue] else { continue }
                figures.append(BenchFigure(phase: "latency", name: "  stage \(stage.rawValue) at \(label): p50", value: ((q["p50"] ?? 0) * 10_000).rounded() / 10, unit: "ms"))
                figures.append(BenchFigure(phase: "latency", name: "  stage \(stage.rawValue) at \(label): p99", value: ((q["p99"] ?? 0) * 10_000).rounded() / 10, unit: "ms"))
            }
        }
        return figures
    }

    /// The rate a paced run offered and the rate it was processed at, the second against
    /// the first: a run whose queue grew (below ~0.95x) measured a backlog, not a latency.
    /// Their names carry no rate, so `--compare` pairs them across runs.
    static func pacedFigures(label: String, offered: Int, processed: Double) -> [BenchFigure] {
        let offeredName = "paced at \(label) of the drain: offered (jobs/s)"
        return [
            BenchFigure(phase: "latency", name: offeredName, value: Double(offered), unit: "jobs/s"),
            BenchFigure(phase: "latency", name: "paced at \(label) of the drain: processed, first enqueue to last completion (jobs/s)",
                        value: processed, unit: "jobs/s", ceiling: offeredName, target: "≈ 1.0x the offered rate (kept up)"),
        ]
    }

    /// The serve's per-stage percentiles (`/v1/stats` worker.stage_seconds).
    func stageSeconds() async throws -> [String: [String: Double]] {
        let body = try await httpGet("http://127.0.0.1:\(settings.servePort)/v1/stats")
        let json = try JSONSerialization.jsonObject(with: body) as? [String: Any]
        return ((json?["worker"] as? [String: Any])?["stage_seconds"] as? [String: [String: Double]]) ?? [:]
    }

    // MARK: reads

    func reads(_ sql: BenchSQL) async throws -> [BenchFigure] {
        guard let wrk = ChildProcess.which("wrk") else { throw BenchError.missingTool("wrk") }
        let (lo, hi) = try await sql.idRange()
        let script = "\(workDir)/get.lua"
        try """
            request = function() return wrk.format("GET", "/v1/payments/" .. math.random(\(lo), \(hi))) end
            """.write(toFile: script, atomically: true, encoding: .utf8)
        var rate = 0.0, p99 = 0.0, failed = 0.0
        try await withServe(["--no-workers", "--read-pool", "16"], gatewayLatencyMs: nil) { serve in
            progress.update("wrk GET /v1/payments/{id}, 64 connections, \(settings.readSeconds) s")
            let out = try await ChildProcess.output(wrk, ["-t2", "-c64", "-d\(settings.readSeconds)s", "--latency", "-s", script,
                                                          "http://127.0.0.1:\(settings.servePort)"])
            for line in out.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.first == "Requests/sec:", fields.count > 1 { rate = Double(fields[1]) ?? 0 }
                if fields.first == "99%", fields.count > 1 { p99 = Self.milliseconds(String(fields[1])) }
                // "Non-2xx or 3xx responses: N": a read that did not find its payment.
                if line.hasPrefix("Non-2xx"), let n = fields.last.flatMap({ Double($0) }) { failed = n }
            }
        }
        return [
            BenchFigure(phase: "reads", name: "GET /v1/payments/{id}, 64 connections (req/s)", value: rate.rounded(), unit: "req/s",
                        ceiling: Names.statusFunction, target: "≥ 0.8x the function"),
            BenchFigure(phase: "reads", name: "the same, against SELECT 1", value: rate.rounded(), unit: "req/s", ceiling: Names.select1,
                        target: "≥ 0.3x SELECT 1"),
            BenchFigure(phase: "reads", name: "GET /v1/payments/{id} p99", value: p99, unit: "ms"),
            BenchFigure(phase: "reads", name: "GET answers other than 200 (of the reads above)", value: failed, unit: "answers", target: "0"),
        ]
    }

    /// wrk's "1.23ms", "456.00us", "1.02s" as milliseconds.
    static func milliseconds(_ text: String) -> Double {
        for (suffix, factor) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0)] where text.hasSuffix(suffix) {
            return ((Double(text.dropLast(suffix.count)) ?? 0) * factor * 100).rounded() / 100
        }
        return 0
    }

    // MARK: in flight

    func inflight(_ sql: BenchSQL) async throws -> [BenchFigure] {
        let n = settings.inflightCount
        let prefix = "bi-\(UInt32.random(in: 0 ... .max))"
        _ = try await payments(["enqueue", "--count", "\(n)", "--key-prefix", prefix])
        var peakRSS = 0, peakConnections = 0, peakInFlight = 0
        // A 10 s gateway keeps every job in flight at once; the lease (60 s) outlasts it.
        try await withServe(["--concurrency", "\(n)", "--batch-size", "5000", "--lease", "60",
                             "--gateway-latency-ms", "10000", "--gateway-jitter-ms", "1000"], gatewayLatencyMs: nil) { serve in
            let deadline = ContinuousClock.now + .seconds(600)
            while try await sql.openJobs(prefix: prefix) > 0 {
                guard ContinuousClock.now < deadline else { throw BenchError.notReady("\(prefix): not drained within 600 s") }
                peakRSS = max(peakRSS, serve.residentMegabytes)
                peakConnections = max(peakConnections, try await sql.serverConnections())
                if let stats = try? await httpGet("http://127.0.0.1:\(settings.servePort)/v1/stats"),
                   let json = try? JSONSerialization.jsonObject(with: stats) as? [String: Any],
                   let peak = (json["worker"] as? [String: Any])?["peak_in_flight"] as? Int {
                    peakInFlight = peak
                }
                progress.update("\(peakInFlight) in flight at the peak; serve RSS \(serve.residentMegabytes) MB")
                try await Task.sleep(for: .milliseconds(200))
            }
        }
        return [
            BenchFigure(phase: "inflight", name: "peak jobs in flight (in-process gateway, 10 s latency)", value: Double(peakInFlight), unit: "jobs"),
            BenchFigure(phase: "inflight", name: "peak serve RSS with them", value: Double(peakRSS), unit: "MB", target: "≤ 600 MB at 100,000"),
            BenchFigure(phase: "inflight", name: "peak PostgreSQL server connections (db_user, primary)", value: Double(peakConnections), unit: "connections",
                        target: "≤ 24"),
        ]
    }

    // MARK: processes

    /// Runs `body` with a serve (and, given a latency, a `payments gateway` it calls)
    /// started on the bench's ports, and stops both by PID whatever happens.
    func withServe(_ arguments: [String], gatewayLatencyMs: Double?, _ body: (ChildProcess) async throws -> Void) async throws {
        var gateway: ChildProcess?
        var serveArguments = ["serve", "--port", "\(settings.servePort)", "--stats-interval", "60"] + arguments
        if let latency = gatewayLatencyMs {
            let journal = "\(workDir)/journal-\(UUID().uuidString).jsonl"
            gateway = try ChildProcess("gateway", executable: settings.binary, arguments: [
                "gateway", "--port", "\(settings.gatewayPort)", "--journal", journal, "--latency-ms", "\(latency)",
            ], logPath: "\(workDir)/gateway.log")
            try await waitHealthy(settings.gatewayPort, gateway!)
            serveArguments += ["--gateway-url", "http://127.0.0.1:\(settings.gatewayPort)"]
        } else if !arguments.contains("--gateway-latency-ms") {
            serveArguments += ["--gateway-latency-ms", "0"]
        }
        let serve: ChildProcess
        do {
            serve = try ChildProcess("serve", executable: settings.binary, arguments: serveArguments, environment: environment,
                                     logPath: "\(workDir)/serve.log")
        } catch {
            await gateway?.stop()
            throw error
        }
        do {
            try await waitHealthy(settings.servePort, serve)
            try await body(serve)
        } catch {
            await serve.stop()
            await gateway?.stop()
            throw error
        }
        await serve.stop()
        await gateway?.stop()
    }

    var environment: [String: String] {
        func dsn(_ url: DatabaseURL) -> String {
            "postgres://\(url.user):\(url.password ?? "")@\(url.host):\(url.port)/\(url.database)?sslmode=\(url.sslMode.rawValue)"
        }
        return ["WRITE_DSN": dsn(settings.writeURL), "READ_DSN": dsn(settings.readURL)]
    }

    func payments(_ arguments: [String]) async throws -> String {
        try await ChildProcess.output(settings.binary, arguments, environment: environment)
    }

    func waitHealthy(_ port: Int, _ process: ChildProcess) async throws {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard process.isRunning else {
                throw BenchError.notReady("\(process.name) exited at start: \((try? String(contentsOfFile: process.logPath, encoding: .utf8))?.suffix(600) ?? "")")
            }
            if (try? await httpGet("http://127.0.0.1:\(port)/healthz")) != nil { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        await process.stop()
        throw BenchError.notReady("\(process.name) did not answer /healthz on port \(port) within 30 s (log: \(process.logPath))")
    }

    func httpGet(_ url: String) async throws -> Data {
        let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(5))
        guard response.status == .ok else { throw BenchError.notReady("\(url) answered \(response.status.code)") }
        return Data(buffer: try await response.body.collect(upTo: 4 << 20))
    }

    func waitDrained(_ sql: BenchSQL, prefix: String, total: Int, label: String) async throws {
        let deadline = ContinuousClock.now + .seconds(900)
        while true {
            let open = try await sql.openJobs(prefix: prefix)
            if open == 0 { return }
            guard ContinuousClock.now < deadline else { throw BenchError.notReady("\(label): \(open) jobs still open after 900 s") }
            progress.update("\(label): \(open) of \(total) open")
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}
