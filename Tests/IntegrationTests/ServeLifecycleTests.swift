import Foundation
import PaymentsCore
import Testing

extension Integration {
    /// A part of `serve` that ends on its own ends the whole process, at once and clearly.
    @Suite struct ServeLifecycleTests {
        static let port = 18_095 + TestEnvironment.portOffset

        /// Defect: with the HTTP port taken, the worker pool kept retrying its claim loop on
        /// a cancelled pool forever (150% CPU, SIGTERM ignored, gigabytes of log).
        @Test func aPortInUseEndsServeWithinTwoSecondsWithOneClearLine() async throws {
            try await TestEnvironment.migrate()
            let holder = try await APITests.startServer()  // holds APITests.port
            let clash = try ServeProcess(arguments: ["--gateway-latency-ms", "1"], port: APITests.port, journal: ServeProcess.journalPath())
            let start = ContinuousClock.now
            let status = try await clash.waitForExit(timeout: .seconds(10))
            let took = ContinuousClock.now - start
            print("serve on a taken port: exit \(status) after \(took)")
            #expect(status != 0)
            #expect(took < .seconds(2), "it took \(took)")
            #expect(clash.log.contains("port \(APITests.port) is in use"), "log:\n\(clash.log.suffix(2000))")
            let retries = clash.log.components(separatedBy: "claim failed").count - 1
            #expect(retries < 5, "\(retries) claim retries after the group was cancelled")
            try await APITests.stop(holder)
        }

        /// Defect found by the fault suite: an `enqueue` running when the primary stopped
        /// never exited. Its batch failed, but the connection pool, still retrying logins
        /// that pgbouncer refused (server_login_retry), never finished shutting down
        /// (PostgresNIO 1.33, vapor/postgres-nio#599): the command hung with no socket open.
        @Test func anEnqueueCutOffFromThePrimaryEndsWithAClearError() async throws {
            try await TestEnvironment.migrate()
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("enqueue-\(UUID().uuidString).log").path
            var env = TestEnvironment.environment
            env["WRITE_DSN"] = TestEnvironment.writeDSN
            env["READ_DSN"] = TestEnvironment.readDSN
            let pid = try Subprocess.spawn(TestEnvironment.binary.path,
                ["enqueue", "--count", "5000000", "--timeout", "5", "--key-prefix", TestEnvironment.uniquePrefix("cutoff")],
                environment: env, stdout: log, stderr: log)
            defer { try? FileManager.default.removeItem(atPath: log) }
            var status: Int32 = 0
            var exited = false
            // Whatever happens below, the enqueue is stopped and the primary started again:
            // the other tests share this topology.
            func restore() async throws -> TestEnvironment.Output {
                if !exited { kill(pid, SIGKILL); waitpid(pid, &status, 0) }
                return try await TestEnvironment.topology(["start", "primary"])
            }
            let stop: TestEnvironment.Output
            do {
                try await Task.sleep(for: .seconds(2))
                stop = try await TestEnvironment.topology(["stop", "primary"])
                let deadline = ContinuousClock.now + .seconds(20)
                while ContinuousClock.now < deadline {
                    if waitpid(pid, &status, WNOHANG) == pid { exited = true; break }
                    try await Task.sleep(for: .milliseconds(100))
                }
            } catch {
                _ = try? await restore()
                throw error
            }
            let start = try await restore()
            #expect(stop.status == 0, "topology stop primary: \(stop.stderr)")
            #expect(start.status == 0, "topology start primary: \(start.stderr)")
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            #expect(exited, "enqueue still ran 20 s after the primary stopped:\n\(output.suffix(1500))")
            #expect(exited && Subprocess.exitCode(status) == 1, "exit status \(Subprocess.exitCode(status))")
            #expect(output.contains("error:"), "\(output.suffix(1500))")
            // Whatever it inserted before is complete batches only; the queue is left idle
            // once the write path answers again.
            try await TestEnvironment.eventually("pgbouncer-write answers again", timeout: .seconds(30)) {
                (try? await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT 1")) == 1
            }
            try await QueueReset.cancelLeftovers()
        }

        /// Defect: a gateway call that never returned kept its job `running` forever (the
        /// heartbeat renewed the lease with no age limit). Each call now has a deadline
        /// below the lease; an unanswered call is an unknown outcome, retried with the key;
        /// a payment fails only once its retry budget is over and the gateway, asked after
        /// every deadline, holds no charge for it: never on our faults alone.
        @Test func aGatewayThatNeverAnswersDoesNotHoldJobsForever() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("hang")
            let journal = ServeProcess.journalPath()
            let enqueued = try await TestEnvironment.run(["enqueue", "--count", "20", "--key-prefix", prefix, "--give-up-after", "8"])
            try #require(enqueued.status == 0, "\(enqueued.stderr)")
            let serve = try ServeProcess(arguments: [
                // No --gateway-timeout: the default (half the lease, 1.5 s) must apply.
                "--gateway-latency-ms", "60000", "--gateway-jitter-ms", "0", "--lease", "3",
                "--retry-base-ms", "10", "--retry-cap-ms", "50",
            ], port: Self.port + 1, journal: journal)
            try await serve.waitUntilHealthy()
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(90))
            let states = try await Integration.WorkerTests.states(prefix)
            #expect(states == ["failed": 20], "\(states)")
            let proven = try await TestEnvironment.scalar(TestEnvironment.writeURL, """
                SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") AND failure_reason = 'budget_exhausted'
                  AND last_error LIKE 'retry budget exhausted:%' AND finished_at >= created_at + interval '8 seconds'
                """)
            #expect(proven == 20, "every failure must come after the budget, on the gateway's answer, not on a guess")
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            // The fault (a gateway that never answers) outlasts the 8 s budget: budget failures are the point.
            try await Integration.WorkerTests.assertInvariants(prefix, journals: [journal], allowBudgetFailures: true)
        }

        /// Defect seen by the fault suite (2 runs in about 10, after a primary restart and an
        /// HAProxy outage): serve ignored SIGTERM. The HTTP server drains before the worker
        /// pool stops, and its drain waits for every handler; a POST waiting for a
        /// pgbouncer-write connection that PostgresNIO 1.33 never grants (logins that get
        /// no answer) held it for ever. Here pgbouncer-write is a socket that listens and
        /// never answers: the POST must get a 503 within its deadline, and SIGTERM sent
        /// while it waits must stop serve.
        @Test func aRequestWaitingOnAnUnansweringWritePoolDoesNotHoldShutdown() async throws {
            let hole = try BlackHoleListener()
            defer { hole.close() }
            var dsn = URLComponents(string: TestEnvironment.writeDSN)!
            dsn.port = hole.port
            let serve = try ServeProcess(arguments: ["--gateway-latency-ms", "1"], port: Self.port + 2,
                                         journal: ServeProcess.journalPath(), environment: ["WRITE_DSN": dsn.string!])
            try await serve.waitUntilHealthy()
            let body = Data(#"{"amount_minor": 100, "currency": "USD", "debtor": "acct_1", "creditor": "acct_2"}"#.utf8)
            let start = ContinuousClock.now
            let post = Task {
                try await HTTP.request("POST", "http://127.0.0.1:\(Self.port + 2)/v1/payments",
                                       headers: ["Idempotency-Key": TestEnvironment.uniquePrefix("hole"), "Content-Type": "application/json"],
                                       body: body)
            }
            try await Task.sleep(for: .seconds(2))
            serve.signal(SIGTERM)
            let status = try await serve.waitForExit(timeout: .seconds(30))
            let took = ContinuousClock.now - start
            print("serve with an unanswering pgbouncer-write: exit \(status) \(took) after the POST")
            #expect(status == 0, "log:\n\(serve.log.suffix(2000))")
            let reply = try? await post.value
            #expect(reply?.status == 503, "POST answered \(reply.map { "\($0.status) \(String(decoding: $0.body, as: UTF8.self))" } ?? "nothing")")
            #expect((reply?.json?["error"] as? [String: Any])?["code"] as? String == "database_unavailable", "\(reply?.json ?? [:])")
        }

        @Test func aGatewayDeadlineNotBelowTheLeaseIsAUsageError() async throws {
            let result = try await TestEnvironment.run(["serve", "--lease", "5", "--gateway-timeout", "5"])
            #expect(result.status == 64)
            #expect(result.stderr.contains("must be below --lease"), "\(result.stderr)")
        }
    }
}

/// A TCP socket on 127.0.0.1 that listens and never accepts: the kernel completes the
/// handshake for up to a backlog of clients, whose startup messages are never answered,
/// as with a pooler whose server logins hang.
final class BlackHoleListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EBADF) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else { Glibc.close(fd); throw POSIXError(.EADDRINUSE) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Glibc.close(fd) }
}
