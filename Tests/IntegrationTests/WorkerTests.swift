import Foundation
import PaymentsCore
import PaymentsSimulator
import PaymentsProof
import PostgresNIO
import Testing

extension Integration {
    @Suite struct WorkerTests {
        static let basePort = 18_080 + TestEnvironment.portOffset

        static func enqueue(_ count: Int, prefix: String) async throws {
            let result = try await TestEnvironment.run(["enqueue", "--count", "\(count)", "--key-prefix", prefix])
            try #require(result.status == 0, "enqueue failed: \(result.stderr)")
        }

        static func openJobs(_ prefix: String) async throws -> Int {
            try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state IN ('queued', 'running', 'reconciling')")
        }

        static func waitUntilDrained(_ prefix: String, timeout: Duration = .seconds(180)) async throws {
            try await TestEnvironment.eventually("every \(prefix) job terminal", timeout: timeout) { try await openJobs(prefix) == 0 }
        }

        static func assertInvariants(_ prefix: String, journals: [String], allowBudgetFailures: Bool = false) async throws {
            let report = try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await Invariants.check(client, keyPrefix: prefix, journals: journals, allowBudgetFailures: allowBudgetFailures,
                                           logger: TestEnvironment.logger)
            }
            print(report.text)
            for check in report.checks {
                #expect(check.passed, "\(check.name): \(check.detail)")
            }
        }

        static func states(_ prefix: String) async throws -> [String: Int] {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                var counts: [String: Int] = [:]
                for try await (state, n) in try await client.query(
                    "SELECT state, count(*)::int8 FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") GROUP BY state",
                    logger: TestEnvironment.logger).decode((String, Int64).self) {
                    counts[state] = Int(n)
                }
                return counts
            }
        }

        /// Client backends of db_user on the primary right now (what pgbouncer-write holds).
        static func primaryBackends() async throws -> Int {
            try await TestEnvironment.scalar(TestEnvironment.primaryURL, """
                SELECT count(*) FROM pg_stat_activity
                WHERE usename = current_user AND backend_type = 'client backend' AND pid <> pg_backend_pid()
                """)
        }

        @Test func tenThousandJobsWithTransientFailuresAndDeclines() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("faults")
            let journal = ServeProcess.journalPath()
            try await Self.enqueue(10_000, prefix: prefix)
            let serve = try ServeProcess(arguments: [
                "--gateway-latency-ms", "2", "--gateway-transient-failure-rate", "0.10", "--gateway-decline-rate", "0.02",
                "--retry-base-ms", "20", "--retry-cap-ms", "400", "--concurrency", "2000",
            ], port: Self.basePort, journal: journal)
            try await serve.waitUntilHealthy()
            try await Self.waitUntilDrained(prefix)
            let stats = try await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/v1/stats").json
            // Job latency is exported as a Prometheus histogram (buckets, sum, count), one
            // observation per finished job.
            let metrics = String(decoding: try await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/metrics").body, as: UTF8.self)
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            #expect(metrics.contains("payments_job_latency_seconds_bucket{le=\""), "\(metrics.prefix(1500))")
            let observed = metrics.split(separator: "\n").first { $0.hasPrefix("payments_job_latency_seconds_count") }
                .flatMap { Int($0.split(separator: " ").last ?? "") }
            #expect(observed == 10_000, "latency histogram count: \(String(describing: observed))")
            // Where the time went: one histogram per stage, each with an observation per
            // claim (every attempt is claimed, called and completed), and the same in /v1/stats.
            for stage in ["claim_wait", "claim", "gateway", "completion_wait", "completion_commit"] {
                let count = metrics.split(separator: "\n").first { $0.hasPrefix("payments_job_stage_seconds_count{stage=\"\(stage)\"}") }
                    .flatMap { Int($0.split(separator: " ").last ?? "") }
                #expect((count ?? 0) >= 10_000, "stage \(stage): \(String(describing: count)) observations")
                let percentiles = ((stats?["worker"] as? [String: Any])?["stage_seconds"] as? [String: Any])?[stage] as? [String: Double]
                #expect(percentiles?["p99"] != nil && percentiles!["p99"]! >= percentiles!["p50"]!, "stage \(stage) in /v1/stats: \(String(describing: percentiles))")
            }
            let gatewayP50 = (((stats?["worker"] as? [String: Any])?["stage_seconds"] as? [String: Any])?["gateway"] as? [String: Double])?["p50"] ?? 0
            #expect(gatewayP50 >= 0.001 && gatewayP50 < 0.5, "a 2 ms gateway's call p50: \(gatewayP50) s")
            let states = try await Self.states(prefix)
            print("states: \(states); worker: \(String(describing: stats?["worker"]))")
            let failed = states["failed", default: 0]
            // About 2% declines (stable per key) plus the rare job whose 5 attempts all failed.
            #expect((100...400).contains(failed), "failed \(failed)")
            #expect(states["succeeded", default: 0] + failed == 10_000)
            let worker = stats?["worker"] as? [String: Any]
            #expect((worker?["retried"] as? Int ?? 0) > 500, "10% transient failures should cause retries")
            let lastErrors = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'failed' AND last_error IS NULL")
            #expect(lastErrors == 0, "every failed job keeps its error")
            try await Self.assertInvariants(prefix, journals: [journal])
            try? FileManager.default.removeItem(atPath: journal)
        }

        @Test func tenThousandInFlightOverAHandfulOfConnections() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("wide")
            let journal = ServeProcess.journalPath()
            try await Self.enqueue(10_000, prefix: prefix)
            let serve = try ServeProcess(arguments: [
                "--gateway-latency-ms", "200", "--gateway-jitter-ms", "20", "--concurrency", "10000", "--batch-size", "5000",
            ], port: Self.basePort + 1, journal: journal)
            try await serve.waitUntilHealthy()
            var peakInFlight = 0, peakBackends = 0, peakRSS = 0.0
            let deadline = ContinuousClock.now + .seconds(120)
            while try await Self.openJobs(prefix) > 0 && ContinuousClock.now < deadline {
                if let worker = try? await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/v1/stats").json?["worker"] as? [String: Any] {
                    // The server's own high-water mark: sampling from outside can miss the peak.
                    peakInFlight = max(peakInFlight, worker["peak_in_flight"] as? Int ?? 0)
                }
                peakBackends = max(peakBackends, try await Self.primaryBackends())
                peakRSS = max(peakRSS, serve.residentMB)
                try await Task.sleep(for: .milliseconds(100))
            }
            print("peak in flight \(peakInFlight), peak primary backends \(peakBackends), peak RSS \(Int(peakRSS)) MB")
            #expect(try await Self.openJobs(prefix) == 0)
            #expect(peakInFlight >= 5_000, "the pool should hold thousands of jobs in flight, saw \(peakInFlight)")
            // pgbouncer-write: default_pool_size 16 + reserve 4 (max_db_connections 24).
            #expect(peakBackends <= 24, "PostgreSQL backends \(peakBackends) exceed the pooler's limit")
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            try await Self.assertInvariants(prefix, journals: [journal])
            try? FileManager.default.removeItem(atPath: journal)
        }

        @Test func twoServersShareTheQueueWithoutOverlap() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("pair")
            // Two processes, one journal each: a job charged by both would show in both.
            let journals = [ServeProcess.journalPath(), ServeProcess.journalPath()]
            let servers = try (0..<2).map { i in
                try ServeProcess(arguments: ["--gateway-latency-ms", "5", "--concurrency", "500", "--batch-size", "100"],
                                 port: Self.basePort + 2 + i, journal: journals[i])
            }
            for serve in servers { try await serve.waitUntilHealthy() }
            try await Self.enqueue(10_000, prefix: prefix)
            try await Self.waitUntilDrained(prefix)
            var processed: [Int] = []
            for serve in servers {
                let worker = try await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/v1/stats").json?["worker"] as? [String: Any]
                processed.append(worker?["succeeded"] as? Int ?? 0)
                serve.signal(SIGTERM)
                #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            }
            print("succeeded per server: \(processed)")
            #expect(processed.allSatisfy { $0 > 0 }, "both servers should have done work: \(processed)")
            #expect(processed.reduce(0, +) == 10_000)
            let perJournal = journals.map { (try? ChargeJournal.read($0).filter { $0.key.hasPrefix(prefix) }.count) ?? 0 }
            #expect(perJournal.reduce(0, +) == 10_000, "each job charged by exactly one server: \(perJournal)")
            try await Self.assertInvariants(prefix, journals: journals)
            for j in journals { try? FileManager.default.removeItem(atPath: j) }
        }

        @Test func sigkillMidRunLosesNothingAndPostsNothingTwice() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("kill9")
            let journal = ServeProcess.journalPath()
            try await Self.enqueue(10_000, prefix: prefix)
            let args = ["--gateway-latency-ms", "100", "--concurrency", "2000", "--lease", "3", "--gateway-transient-failure-rate", "0.05"]
            let first = try ServeProcess(arguments: args, port: Self.basePort + 4, journal: journal)
            try await first.waitUntilHealthy()
            // Kill it while it holds jobs and has completed some, as the process itself counts
            // them: a count through the payment_jobs view took long enough, on the full suite's
            // history, that the run was over when it came back (seen: nothing stranded).
            try await TestEnvironment.eventually("some jobs done", timeout: .seconds(60)) {
                let worker = try await HTTP.request("GET", "http://127.0.0.1:\(first.port)/v1/stats").json?["worker"] as? [String: Any]
                return (worker?["succeeded"] as? Int ?? 0) >= 1_000 && (worker?["in_flight"] as? Int ?? 0) > 0
            }
            first.signal(SIGKILL)
            _ = try await first.waitForExit(timeout: .seconds(10))
            let stranded = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'running'")
            print("running after SIGKILL: \(stranded)")
            #expect(stranded > 0, "the kill should strand jobs mid-flight")

            let second = try ServeProcess(arguments: args, port: Self.basePort + 5, journal: journal)
            try await second.waitUntilHealthy()
            try await Self.waitUntilDrained(prefix)
            let worker = try await HTTP.request("GET", "http://127.0.0.1:\(second.port)/v1/stats").json?["worker"] as? [String: Any]
            #expect((worker?["reaped"] as? Int ?? 0) > 0, "the second server should have reclaimed expired leases")
            let duplicates = (try await HTTP.request("GET", "http://127.0.0.1:\(second.port)/v1/stats").json?["gateway"] as? [String: Any])?["duplicates"] as? Int ?? 0
            print("reaped: \(worker?["reaped"] ?? 0), gateway dedup hits in the second server: \(duplicates)")
            second.signal(SIGTERM)
            #expect(try await second.waitForExit(timeout: .seconds(30)) == 0)
            try await Self.assertInvariants(prefix, journals: [journal])
            try? FileManager.default.removeItem(atPath: journal)
        }

        @Test func sigtermWithJobsInFlightExitsZeroAndLeavesNothingRunning() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("term")
            let journal = ServeProcess.journalPath()
            try await Self.enqueue(5_000, prefix: prefix)
            let serve = try ServeProcess(arguments: ["--gateway-latency-ms", "500", "--concurrency", "2000", "--shutdown-timeout", "5"],
                                         port: Self.basePort + 6, journal: journal)
            try await serve.waitUntilHealthy()
            try await TestEnvironment.eventually("jobs in flight", timeout: .seconds(30)) {
                let worker = try await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/v1/stats").json?["worker"] as? [String: Any]
                return (worker?["in_flight"] as? Int ?? 0) > 100
            }
            let start = ContinuousClock.now
            serve.signal(SIGTERM)
            let status = try await serve.waitForExit(timeout: .seconds(30))
            print("exit \(status) after \(ContinuousClock.now - start)")
            #expect(status == 0, "log:\n\(serve.log.suffix(2000))")
            let running = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'running'")
            #expect(running == 0, "nothing may be left running after a graceful stop")
            let terminal = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND state IN ('succeeded', 'failed')")
            #expect(terminal > 0)
            // Whatever was finished is posted correctly; the rest waits in the queue for the next server.
            let next = try ServeProcess(arguments: ["--gateway-latency-ms", "1", "--concurrency", "2000"], port: Self.basePort + 7, journal: journal)
            try await next.waitUntilHealthy()
            try await Self.waitUntilDrained(prefix)
            next.signal(SIGTERM)
            #expect(try await next.waitForExit(timeout: .seconds(30)) == 0)
            try await Self.assertInvariants(prefix, journals: [journal])
            try? FileManager.default.removeItem(atPath: journal)
        }
    }
}
