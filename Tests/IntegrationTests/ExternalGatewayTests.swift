import Foundation
import PaymentsCore
import Testing

/// A real `payments gateway` process, started from the built binary.
final class GatewayProcess: @unchecked Sendable {
    let pid: pid_t
    let port: Int
    let journal: String
    let logURL: URL
    var url: String { "http://127.0.0.1:\(port)" }

    init(port: Int, journal: String = ServeProcess.journalPath(), faults: [String] = []) throws {
        self.port = port
        self.journal = journal
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(port)-\(UUID().uuidString).log")
        pid = try Subprocess.spawn(TestEnvironment.binary.path,
            ["gateway", "--port", "\(port)", "--journal", journal, "--latency-ms", "2"] + faults,
            environment: TestEnvironment.environment, stdout: logURL.path, stderr: logURL.path)
    }

    deinit {
        kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0)
        try? FileManager.default.removeItem(at: logURL)
    }

    func waitUntilHealthy() async throws {
        try await TestEnvironment.eventually("gateway on port \(port) answers /healthz", timeout: .seconds(20)) {
            (try? await HTTP.request("GET", "\(self.url)/healthz"))?.status == 200
        }
    }

    func stats() async throws -> [String: Any] {
        try await HTTP.request("GET", "\(url)/v1/stats").json ?? [:]
    }

    /// Charges `key` directly, as a worker would have before it vanished.
    func charge(key: String, amountMinor: Int64, currency: String, jobID: Int64? = nil) async throws -> String? {
        let job = jobID.map { #","job_id":\#($0)"# } ?? ""
        let body = #"{"amount_minor":\#(amountMinor),"currency":"\#(currency)","debtor":"acct_a","creditor":"acct_b"\#(job)}"#
        let reply = try await HTTP.request("POST", "\(url)/v1/charges", headers: ["Idempotency-Key": key, "Content-Type": "application/json"], body: Data(body.utf8))
        return reply.json?["charge_id"] as? String
    }
}

extension Integration {
    /// Serves working through the external gateway, as in production: defects that need
    /// a provider shared by several processes, and unknown outcomes settled by the reconciler.
    @Suite struct ExternalGatewayTests {
        static let port = 18_110 + TestEnvironment.portOffset

        /// Ten new payments, claimed for `owner` `claimedSecondsAgo` with a lease that runs
        /// `leaseSecondsLeft` more, and never delivered to it (a claim that committed after
        /// its client gave up). Made directly, with pgbouncer-write paused so no worker of
        /// the serve claims them first: timing a real late claim through a paused pooler is
        /// not reliable, since the driver drops a query it stops waiting for.
        static func injectOrphans(_ prefix: String, owner: String, claimedSecondsAgo: Int, leaseSecondsLeft: Int) async throws {
            let paused = try await TestEnvironment.topology(["psql", "admin-write", "-c", "PAUSE"])
            try #require(paused.status == 0, "PAUSE: \(paused.stderr)")
            let enqueued = try await TestEnvironment.run(["enqueue", "--count", "10", "--key-prefix", prefix],
                                                         environment: ["WRITE_DSN": TestEnvironment.primaryDSN])
            _ = try await TestEnvironment.scalar(TestEnvironment.primaryURL, """
                WITH u AS (UPDATE payment_queue SET state = 'running', attempt = 1, lease_owner = \(owner),
                                                   lease_expires_at = now() + make_interval(secs => \(leaseSecondsLeft)),
                                                   claimed_at = now() - make_interval(secs => \(claimedSecondsAgo))
                           WHERE idempotency_key LIKE \(prefix + "-%") RETURNING 1)
                SELECT count(*) FROM u
                """)
            let resumed = try await TestEnvironment.topology(["psql", "admin-write", "-c", "RESUME"])
            try #require(enqueued.status == 0 && resumed.status == 0, "\(enqueued.stderr) \(resumed.stderr)")
        }

        static func serveStats(_ serve: ServeProcess) async throws -> [String: Any] {
            try await HTTP.request("GET", "http://127.0.0.1:\(serve.port)/v1/stats").json?["worker"] as? [String: Any] ?? [:]
        }

        /// Defect 3: the simulated gateway deduplicated per process, so a lost answer
        /// retried by another serve charged the key again. Two serves now share one
        /// gateway whose answers are often lost after the charge.
        @Test func twoServesSharingTheGatewayChargeEachKeyOnce() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("shared-gw")
            let gateway = try GatewayProcess(port: Self.port, faults: ["--lost-answer-rate", "0.3", "--error-rate", "0.1", "--decline-rate", "0.02"])
            try await gateway.waitUntilHealthy()
            try await Integration.WorkerTests.enqueue(1_000, prefix: prefix)
            let serves = try (1...2).map { i in
                try ServeProcess(arguments: ["--gateway-url", gateway.url, "--lease", "6", "--retry-base-ms", "10", "--retry-cap-ms", "100"],
                                 port: Self.port + i, journal: gateway.journal)
            }
            for serve in serves { try await serve.waitUntilHealthy() }
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(120))
            for serve in serves { serve.signal(SIGTERM); #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0) }
            let stats = try await gateway.stats()
            print("gateway: \(stats)")
            #expect((stats["lost_answers"] as? Int ?? 0) > 0, "the fault must have happened")
            try await Integration.WorkerTests.assertInvariants(prefix, journals: [gateway.journal])
        }

        /// Defect 2: a job whose charge could still land was recorded `failed` after its
        /// last attempt. With hangs and lost answers on every job's only attempt in a row,
        /// jobs go to `reconciling`; the reconciler posts those the gateway charged and
        /// queues again, within the budget, those it never charged (before retry budgets,
        /// they failed): every payment ends succeeded.
        @Test func unknownOutcomesAreReconciledNeverGuessed() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("reconcile")
            let gateway = try GatewayProcess(port: Self.port + 3, faults: ["--hang-rate", "0.3", "--hang-seconds", "4", "--lost-answer-rate", "0.4"])
            try await gateway.waitUntilHealthy()
            try await Integration.WorkerTests.enqueue(100, prefix: prefix)
            _ = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "WITH u AS (UPDATE payment_queue SET max_attempts = 1 WHERE idempotency_key LIKE \(prefix + "-%") RETURNING 1) SELECT count(*) FROM u")
            let serve = try ServeProcess(arguments: ["--gateway-url", gateway.url, "--lease", "3"], port: Self.port + 4, journal: gateway.journal)
            try await serve.waitUntilHealthy()
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(90))
            let worker = try await Self.serveStats(serve)
            print("worker: \(worker); gateway: \(try await gateway.stats())")
            #expect((worker["to_reconcile"] as? Int ?? 0) > 0, "some outcomes must have been unknown")
            #expect((worker["reconciled_requeued"] as? Int ?? 0) > 0, "hung requests expire uncharged and are queued again by the reconciler")
            let states = try await Integration.WorkerTests.states(prefix)
            #expect(states == ["succeeded": 100], "\(states)")
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            try await Integration.WorkerTests.assertInvariants(prefix, journals: [gateway.journal])
        }

        /// Defect 7: a job whose worker keeps vanishing was re-run without end. Past the
        /// cap of lost leases it is reconciled before it runs again: posted if the gateway
        /// charged it, queued again (its budget lasting) if not.
        @Test func aJobThatKeepsLosingItsLeaseIsReconciled() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("poison")
            let gateway = try GatewayProcess(port: Self.port + 5)
            try await gateway.waitUntilHealthy()
            try await Integration.WorkerTests.enqueue(2, prefix: prefix)
            // Both jobs were held by a worker that vanished, for the third time; the first
            // one's charge had gone through.
            _ = try await TestEnvironment.scalar(TestEnvironment.writeURL, """
                WITH u AS (UPDATE payment_queue SET state = 'running', attempt = 3, lease_losses = 2, lease_owner = 'ghost/1',
                                                   lease_expires_at = now() - interval '1 second', claimed_at = now() - interval '1 minute'
                           WHERE idempotency_key LIKE \(prefix + "-%") RETURNING 1)
                SELECT count(*) FROM u
                """)
            let charged = try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                var rows: [(String, Int64, String)] = []
                for try await row in try await client.query(
                    "SELECT idempotency_key, amount_minor, currency::text FROM payment_jobs WHERE idempotency_key = \(prefix + "-1")",
                    logger: TestEnvironment.logger).decode((String, Int64, String).self) { rows.append(row) }
                return rows[0]
            }
            let chargeID = try await gateway.charge(key: charged.0, amountMinor: charged.1, currency: charged.2)
            #expect(chargeID != nil)
            let serve = try ServeProcess(arguments: ["--gateway-url", gateway.url, "--lease", "3"], port: Self.port + 6, journal: gateway.journal)
            try await serve.waitUntilHealthy()
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(30))
            let states = try await Integration.WorkerTests.states(prefix)
            #expect(states == ["succeeded": 2], "\(states)")
            let posted = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(charged.0) AND state = 'succeeded' AND charge_id = \(chargeID ?? "") AND attempt = 3")
            #expect(posted == 1, "the job the gateway charged is posted with that charge, not run again")
            let rerun = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(prefix + "-0") AND attempt = 4")
            #expect(rerun == 1, "the uncharged job runs again only after the reconciler's proof")
            let worker = try await Self.serveStats(serve)
            #expect((worker["reconciled_requeued"] as? Int ?? 0) == 1, "\(worker)")
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            try await Integration.WorkerTests.assertInvariants(prefix, journals: [gateway.journal])
        }

        /// Defect 6: a claim that committed after its client gave up left its jobs running
        /// and unheld for a whole lease, each losing an attempt. The late commit is made
        /// directly (a claim of this serve's owner that it never received): timing one
        /// through a paused pooler is not reliable, since the driver drops a query it stops
        /// waiting for.
        @Test func aClaimCommittedAfterItsClientGaveUpIsReleased() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("orphan")
            let gateway = try GatewayProcess(port: Self.port + 7)
            try await gateway.waitUntilHealthy()
            let serve = try ServeProcess(arguments: ["--gateway-url", gateway.url, "--lease", "60", "--statement-timeout", "1"],
                                         port: Self.port + 8, journal: gateway.journal)
            try await serve.waitUntilHealthy()
            let owner = try #require(serve.log.firstMatch(of: /worker=(\S+)/)?.output.1, "no worker owner in the log")
            try await Integration.WorkerTests.enqueue(20, prefix: prefix)
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(30))
            // Ten more jobs, claimed for this serve 5 s ago with a lease that runs for another
            // minute, and never delivered to it.
            let late = TestEnvironment.uniquePrefix("orphan-late")
            try await Self.injectOrphans(late, owner: String(owner), claimedSecondsAgo: 5, leaseSecondsLeft: 60)
            // Well within the minute the lease still runs: the heartbeat's sweep releases them.
            try await Integration.WorkerTests.waitUntilDrained(late, timeout: .seconds(30))
            let worker = try await Self.serveStats(serve)
            print("worker: \(worker)")
            #expect((worker["orphans_released"] as? Int ?? 0) == 10)
            let lostAttempts = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_jobs WHERE idempotency_key LIKE \(late + "-%") AND attempt > 1")
            #expect(lostAttempts == 0, "a claim nobody received costs no attempt")
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            try await Integration.WorkerTests.assertInvariants(late, journals: [gateway.journal])
        }
    }
}
