import Foundation
@testable import PaymentsCore
import PaymentsSimulator
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

extension Integration {
    /// The worker's own services (claimer, completer, lease heartbeat), each run alone, and
    /// together in a ServiceGroup, which stops them in their order.
    @Suite struct WorkerServicesTests {
        static func configuration(_ label: String) -> WorkerConfiguration {
            var configuration = WorkerConfiguration()
            configuration.owner = "test/\(label)/\(UUID().uuidString.prefix(8))"
            return configuration
        }

        /// Puts the prefix's jobs `running` under `owner` (claim 1, lease ending in
        /// `leaseMillis`), as a claim would; returns their ids in key order.
        static func runUnder(_ owner: String, prefix: String, leaseMillis: Int) async throws -> [Int64] {
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                try await client.query("""
                    UPDATE payment_queue SET state = 'running', attempt = 1, claim_seq = 1, claimed_at = now(), lease_owner = \(owner),
                           lease_expires_at = now() + make_interval(secs => \(Double(leaseMillis) / 1000)), charge_deadline_at = now()
                    WHERE idempotency_key LIKE \(prefix + "-%")
                    RETURNING id, idempotency_key
                    """, logger: TestEnvironment.logger).collect()
                    .map { try $0.decode((Int64, String).self) }.sorted { $0.1 < $1.1 }.map(\.0)
            }
        }

        /// `count` new jobs of a fresh prefix, `running` under `configuration`'s owner as
        /// `runUnder` puts them; their prefix and ids in key order.
        static func runningJobs(_ count: Int, under configuration: WorkerConfiguration, label: String,
                                leaseMillis: Int) async throws -> (prefix: String, ids: [Int64]) {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix(label)
            try await Integration.WorkerTests.enqueue(count, prefix: prefix)
            return (prefix, try await runUnder(configuration.owner, prefix: prefix, leaseMillis: leaseMillis))
        }

        static func claimed(_ id: Int64) -> ClaimedJob {
            ClaimedJob(id: id, idempotencyKey: "", payment: Payment(amountMinor: 1, currency: "EUR", debtor: "a", creditor: "b"),
                       attempt: 1, maxAttempts: 5, leaseExpiresAt: Date(), giveUpAt: Date(), cancelRequested: false,
                       claim: 1, waitedSeconds: 0)
        }

        /// The heartbeat alone keeps the leases of the claims the worker holds alive, and
        /// only those: a claim the worker does not hold runs out.
        @Test func theHeartbeatAloneExtendsOnlyHeldLeases() async throws {
            var configuration = Self.configuration("heartbeat")
            configuration.lease = .milliseconds(1_200)  // a beat every 200 ms
            let beating = configuration
            let (prefix, ids) = try await Self.runningJobs(2, under: configuration, label: "heartbeat", leaseMillis: 500)
            let state = WorkerState()
            _ = state.hold([Self.claimed(ids[0])])
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let heartbeat = LeaseHeartbeat(store: JobStore(client: client, logger: TestEnvironment.logger), state: state,
                                               configuration: beating, metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                let running = Task { try await heartbeat.run() }
                defer { running.cancel() }
                try await Task.sleep(for: .milliseconds(1_500))
                let alive = try await client.query("""
                    SELECT id FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%") AND lease_expires_at > now()
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode(Int64.self) }
                #expect(alive == [ids[0]], "held \(ids[0]), alive \(alive)")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A beat extends only the leases that end within its window: a claim whose lease has
        /// long to run is left alone (its row not locked, so its outcome never waits on the
        /// beat), those that end soon are extended, in transactions of at most
        /// `leaseExtensionBatch`. Before, every beat locked every row held in one
        /// transaction: 2.6 s a beat with 100,000 held.
        @Test func aBeatExtendsOnlyTheLeasesThatAreDue() async throws {
            var configuration = Self.configuration("due")
            configuration.lease = .milliseconds(1_200)  // a beat every 200 ms
            configuration.leaseExtensionBatch = 1  // one transaction for each
            let beating = configuration
            let (prefix, ids) = try await Self.runningJobs(3, under: configuration, label: "due", leaseMillis: 30_000)
            let state = WorkerState()
            _ = state.hold([Self.claimed(ids[0])], leaseEnds: .now + .seconds(30))
            _ = state.hold([Self.claimed(ids[1]), Self.claimed(ids[2])])
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                func leases() async throws -> [Int64: Date] {
                    var leases: [Int64: Date] = [:]
                    for try await (id, end) in try await client.query("""
                        SELECT id, lease_expires_at FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%")
                        """, logger: TestEnvironment.logger).decode((Int64, Date).self) { leases[id] = end }
                    return leases
                }
                let before = try await leases()
                let heartbeat = LeaseHeartbeat(store: JobStore(client: client, logger: TestEnvironment.logger), state: state,
                                               configuration: beating, metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                let running = Task { try await heartbeat.run() }
                defer { running.cancel() }
                try await Task.sleep(for: .milliseconds(700))
                let after = try await leases()
                #expect(after[ids[0]] == before[ids[0]], "a lease with 30 s to run was extended: \(before) -> \(after)")
                #expect(after[ids[1]] != before[ids[1]] && after[ids[2]] != before[ids[2]],
                        "a lease that was due was not extended: \(before) -> \(after)")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// The completer alone records what is queued under the worker's lease and lets go of
        /// those claims; once the queue is closed and drained it waits for its own turn to
        /// stop (a ServiceGroup takes a service that ends before its turn for a failure).
        @Test func theCompleterRecordsAndWaitsForItsTurnToStop() async throws {
            let configuration = Self.configuration("completer")
            let (prefix, ids) = try await Self.runningJobs(2, under: configuration, label: "completer", leaseMillis: 30_000)
            let state = WorkerState()
            _ = state.hold(ids.map(Self.claimed))
            state.completions.append(Completion(jobID: ids[0], claim: 1, resolution: .failed(reason: .cardDeclined, error: "declined: test")))
            state.completions.append(Completion(jobID: ids[1], claim: 1, resolution: .retry(error: "test: gateway timeout", after: .seconds(60))))
            state.completions.close()
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let store = JobStore(client: client, logger: TestEnvironment.logger)
                let metrics = WorkerMetrics()
                let completer = Completer(state: state,
                                          recorder: OutcomeRecorder(store: store, configuration: configuration, metrics: metrics, logger: TestEnvironment.logger),
                                          configuration: configuration, metrics: metrics, logger: TestEnvironment.logger)
                let group = ServiceGroup(configuration: .init(services: [completer], logger: TestEnvironment.logger))
                let ended = Mutex(false)
                let running = Task {
                    defer { ended.withLock { $0 = true } }
                    try await group.run()
                }
                try await TestEnvironment.eventually("both recorded") { state.heldCount == 0 }
                try await Task.sleep(for: .milliseconds(300))
                #expect(!ended.withLock { $0 }, "the completer ended before it was asked to stop")
                await group.triggerGracefulShutdown()
                try await running.value
                let states = try await client.query("""
                    SELECT state, attempt FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") ORDER BY idempotency_key
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((String, Int32).self) }
                #expect(states.map { "\($0.0) \($0.1)" } == ["failed 1", "queued 1"], "\(states)")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A payment whose queue row another session holds locked (an operator's open
        /// transaction) holds back no other outcome of its batch: the others are recorded
        /// after one lock wait, and the locked one as soon as the lock goes. Before,
        /// the whole batch (up to 2,000 outcomes, their payments charged) was retried as long
        /// as the lock was held.
        @Test func aRowLockedElsewhereHoldsBackNoOtherOutcome() async throws {
            let configuration = Self.configuration("locked")
            let (prefix, ids) = try await Self.runningJobs(3, under: configuration, label: "locked", leaseMillis: 60_000)
            try #require(ids.count == 3)
            let batch = ids.map { Completion(jobID: $0, claim: 1, resolution: .failed(reason: .cardDeclined, error: "declined: test")) }
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 4) { client in
                // A short timeout, so a lock wait ends in half a second (migration 0023).
                let store = JobStore(client: client, statementTimeout: .seconds(1), logger: TestEnvironment.logger)
                let recorder = OutcomeRecorder(store: store, configuration: configuration, metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                let recording = try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(ids[0]) FOR UPDATE", logger: TestEnvironment.logger)
                    let recording = Task { await recorder.record(batch, fence: .lease(owner: configuration.owner)) }
                    do {
                        try await TestEnvironment.eventually("the unlocked outcomes recorded", timeout: .seconds(20)) {
                            try await Self.states(client, prefix) == ["running", "failed", "failed"]
                        }
                    } catch {
                        recording.cancel()
                        throw error
                    }
                    return recording
                }
                // The lock is gone with its transaction: the last outcome is recorded too.
                await recording.value
                let after = try await Self.states(client, prefix)
                #expect(after == ["failed", "failed", "failed"])
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A worker configuration with one completer, so a held-back completer shows.
        static func oneCompleter(_ label: String) -> WorkerConfiguration {
            var configuration = Self.configuration(label)
            configuration.completers = 1
            return configuration
        }

        /// A completer recording under `configuration`'s leases, its statements bounded by a
        /// second (so a lock wait is half a second, migration 0023).
        static func completer(_ state: WorkerState, _ configuration: WorkerConfiguration, _ client: PostgresClient) -> Completer {
            let store = JobStore(client: client, statementTimeout: .seconds(1), logger: TestEnvironment.logger)
            let metrics = WorkerMetrics()
            return Completer(state: state,
                             recorder: OutcomeRecorder(store: store, configuration: configuration, metrics: metrics, logger: TestEnvironment.logger),
                             configuration: configuration, metrics: metrics, logger: TestEnvironment.logger)
        }

        /// Runs a completer under `configuration` while `body` runs, then closes its queue and
        /// stops it (also when `body` throws).
        static func withRunningCompleter(_ state: WorkerState, _ configuration: WorkerConfiguration,
                                         _ body: @Sendable (PostgresClient) async throws -> Void) async throws {
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 4) { client in
                let group = ServiceGroup(configuration: .init(services: [Self.completer(state, configuration, client)], logger: TestEnvironment.logger))
                let running = Task { try await group.run() }
                func stop() async throws {
                    state.completions.close()
                    await group.triggerGracefulShutdown()
                    try await running.value
                }
                do { try await body(client) } catch {
                    try? await stop()
                    throw error
                }
                try await stop()
            }
        }

        /// A declined outcome of the job's first claim: nothing charged for the cleanup to undo.
        static let declined: @Sendable (Int64) -> Completion = {
            Completion(jobID: $0, claim: 1, resolution: .failed(reason: .cardDeclined, error: "declined: test"))
        }

        /// A completer whose batch waits on a row another session holds locked goes on with
        /// the outcomes that come after it (the locked one is retried apart, its claim held
        /// meanwhile), and the locked one is recorded once the lock goes. Before, a completer
        /// retried that batch as long as the lock was held and recorded nothing else: with one
        /// completer, nothing at all.
        @Test func theCompleterGoesOnPastARowLockedElsewhere() async throws {
            let configuration = Self.oneCompleter("locked-completer")
            let (prefix, ids) = try await Self.runningJobs(3, under: configuration, label: "locked-completer", leaseMillis: 60_000)
            try #require(ids.count == 3)
            let state = WorkerState()
            _ = state.hold(ids.map(Self.claimed))
            try await Self.withRunningCompleter(state, configuration) { client in
                let declined = Self.declined
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(ids[0]) FOR UPDATE", logger: TestEnvironment.logger)
                    state.completions.append(declined(ids[0]))
                    state.completions.append(declined(ids[1]))
                    try await TestEnvironment.eventually("the unlocked outcome of the first batch recorded", timeout: .seconds(20)) {
                        try await Self.states(client, prefix) == ["running", "failed", "running"]
                    }
                    state.completions.append(declined(ids[2]))
                    try await TestEnvironment.eventually("an outcome after the locked one recorded", timeout: .seconds(20)) {
                        try await Self.states(client, prefix) == ["running", "failed", "failed"]
                    }
                    try await TestEnvironment.eventually("only the locked payment's claim held", timeout: .seconds(10)) {
                        state.heldClaims == [HeldJobs.Key(id: ids[0], claim: 1)]
                    }
                }
                // The lock is gone with its transaction.
                try await TestEnvironment.eventually("the locked outcome recorded", timeout: .seconds(20)) {
                    try await Self.states(client, prefix) == ["failed", "failed", "failed"]
                }
                try await TestEnvironment.eventually("every claim let go", timeout: .seconds(10)) { state.heldCount == 0 }
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A cancel asked while the outcomes waited on its lock (payment_cancel holds the rows
        /// it flags until its transaction ends): once it commits, the parked outcomes are
        /// written with the cancel in view. The charged payment stays succeeded, posted once
        /// (a cancel never finishes a charged payment); the one to be retried is not sent
        /// again but settled with the gateway after its last deadline and the margin. A third
        /// outcome of the same batch, its cancel committed before, is written by the
        /// completion's second pass (the rows it could lock) with its cancel in view too.
        @Test func aCancelAskedWhileTheOutcomesWereParkedLeavesTheChargeStanding() async throws {
            let configuration = Self.oneCompleter("cancel-parked")
            let (prefix, ids) = try await Self.runningJobs(3, under: configuration, label: "cancel-parked", leaseMillis: 60_000)
            try #require(ids.count == 3)
            let state = WorkerState()
            _ = state.hold(ids.map(Self.claimed))
            try await Self.withRunningCompleter(state, configuration) { client in
                let store = JobStore(client: client, logger: TestEnvironment.logger)
                #expect(try await store.cancel([ids[2]], margin: .seconds(2)) == [ids[2]: .pending])
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    let asked = try await connection.query("SELECT payment_id, outcome FROM payment_cancel(\([ids[0], ids[1]]), interval '2 seconds')",
                                                           logger: TestEnvironment.logger).collect().map { try $0.decode((Int64, String).self) }
                    try #require(asked.map(\.1) == ["pending", "pending"], "both running: the cancel is only asked")
                    state.completions.append(Completion(jobID: ids[0], claim: 1, resolution: .succeeded(chargeID: "ch-cancel-parked-\(ids[0])")))
                    state.completions.append(Completion(jobID: ids[1], claim: 1, resolution: .retry(error: "gateway timeout", after: .zero)))
                    state.completions.append(Completion(jobID: ids[2], claim: 1, resolution: .retry(error: "gateway timeout", after: .zero)))
                    try await TestEnvironment.eventually("two outcomes parked behind the cancel's locks", timeout: .seconds(20)) {
                        state.lockedCompletions.count == 2
                    }
                    #expect(try await Self.states(client, prefix) == ["running", "running", "reconciling"],
                            "the unlocked one written beside the locked ones, its cancel in view")
                }
                try await TestEnvironment.eventually("the parked outcomes recorded", timeout: .seconds(20)) {
                    try await Self.states(client, prefix) == ["succeeded", "reconciling", "reconciling"]
                }
                try await TestEnvironment.eventually("every claim let go", timeout: .seconds(10)) { state.heldCount == 0 }
                let rows = try await client.query("""
                    SELECT j.id, j.charge_id, j.cancel_requested_at IS NOT NULL,
                           j.state <> 'reconciling' OR j.run_at >= j.charge_deadline_at + interval '2 seconds',
                           (SELECT count(*) FROM ledger_entries l WHERE l.job_id = j.id)
                    FROM payment_jobs j WHERE j.id IN (\(ids[0]), \(ids[1]), \(ids[2])) ORDER BY j.idempotency_key
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((Int64, String?, Bool, Bool, Int64).self) }
                try #require(rows.count == 3)
                #expect(rows[0].1 == "ch-cancel-parked-\(ids[0])" && rows[0].2 && rows[0].4 == 2,
                        "the charged payment keeps its charge and is posted once, the cancel recorded: \(rows[0])")
                #expect(rows[1].1 == nil && rows[1].2 && rows[1].3 && rows[1].4 == 0,
                        "the retried one is settled after its deadline and the margin, nothing posted: \(rows[1])")
                #expect(rows[2].1 == nil && rows[2].2 && rows[2].3 && rows[2].4 == 0, "as the second pass wrote it: \(rows[2])")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// A parked outcome whose lease ran out while its row stayed locked, and which the
        /// reaper took and another worker claimed meanwhile (all in the locking transaction,
        /// so nothing else runs between them): once the lock goes, the parked outcome is
        /// fenced off. Nothing is written for it, the new claim keeps the payment, and this
        /// worker lets its own claim go.
        @Test func aParkedOutcomeWhoseLeaseTheReaperTookIsFencedOff() async throws {
            let configuration = Self.oneCompleter("reaped-parked")
            let (prefix, ids) = try await Self.runningJobs(1, under: configuration, label: "reaped-parked", leaseMillis: 60_000)
            try #require(ids.count == 1)
            let id = ids[0]
            let state = WorkerState()
            _ = state.hold([Self.claimed(id)])
            let other = "test/reaped-parked-other/\(UUID().uuidString.prefix(8))"
            try await Self.withRunningCompleter(state, configuration) { client in
                try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(id) FOR UPDATE", logger: TestEnvironment.logger)
                    state.completions.append(Completion(jobID: id, claim: 1, resolution: .succeeded(chargeID: "ch-reaped-parked-\(id)")))
                    try await TestEnvironment.eventually("the outcome parked behind the lock", timeout: .seconds(20)) {
                        state.lockedCompletions.count == 1
                    }
                    try await connection.query("UPDATE payment_queue SET lease_expires_at = now() - interval '1 second' WHERE id = \(id)",
                                               logger: TestEnvironment.logger)
                    let reaped = try await connection.query(JobStore.reapStatement(limit: 1_000, maxLeaseLosses: 3, settleAfter: .seconds(2)),
                                                            logger: TestEnvironment.logger).collect().map { try $0.decode(Int64.self) }
                    try #require(reaped == [1])
                    let claimed = try await connection.query(JobStore.claimStatement(limit: 10, owner: other, lease: .seconds(60), timeoutMilliseconds: 1_000),
                                                             logger: TestEnvironment.logger).collect().map { try $0.makeRandomAccess()["id"].decode(Int64.self) }
                    try #require(claimed == [id], "the other worker claimed it again")
                }
                try await TestEnvironment.eventually("the parked outcome let go", timeout: .seconds(20)) { state.heldCount == 0 }
                let row = try await client.query("""
                    SELECT state, lease_owner, claim_seq, (SELECT count(*) FROM ledger_entries WHERE job_id = \(id)),
                           (SELECT count(*) FROM payment_history WHERE id = \(id))
                    FROM payment_queue WHERE id = \(id)
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((String, String?, Int64, Int64, Int64).self) }
                #expect(row.map { "\($0.0) \($0.1 ?? "-") \($0.2) \($0.3) \($0.4)" } == ["running \(other) 2 0 0"],
                        "the new claim keeps the payment; nothing posted, nothing finished")
                #expect(state.knownClaims(forgetBefore: .now - .seconds(120)).isEmpty, "fenced off, not given up")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// At shutdown, the completer ends once the give-up deadline (the shutdown timeout and
        /// five seconds) has passed even while a parked outcome's row stays locked: that
        /// outcome is given up (its lease will run out and the reaper re-run it), its claim
        /// remembered as unrecorded, and what was written stays written.
        @Test func atShutdownTheCompleterGivesUpAnOutcomeWhoseRowStaysLocked() async throws {
            var configuration = Self.oneCompleter("locked-shutdown")
            configuration.shutdownTimeout = .zero
            let (prefix, ids) = try await Self.runningJobs(2, under: configuration, label: "locked-shutdown", leaseMillis: 60_000)
            try #require(ids.count == 2)
            let state = WorkerState()
            _ = state.hold(ids.map(Self.claimed))
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 4) { [configuration] client in
                let completer = Self.completer(state, configuration, client)
                let declined = Self.declined
                let ended = try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id = \(ids[0]) FOR UPDATE", logger: TestEnvironment.logger)
                    let group = ServiceGroup(configuration: .init(services: [completer], logger: TestEnvironment.logger))
                    let running = Task { try await group.run() }
                    state.completions.append(declined(ids[0]))
                    state.completions.append(declined(ids[1]))
                    try await TestEnvironment.eventually("the unlocked outcome recorded", timeout: .seconds(20)) {
                        try await Self.states(client, prefix) == ["running", "failed"]
                    }
                    _ = state.requestStop()
                    state.completions.close()
                    // Still inside the transaction: the lock is held until the completer ends, or 25 s.
                    let ended = await withTaskGroup(of: Bool.self) { race in
                        race.addTask {
                            await group.triggerGracefulShutdown()
                            return (try? await running.value) != nil
                        }
                        race.addTask {
                            try? await Task.sleep(for: .seconds(25))
                            running.cancel()
                            return false
                        }
                        let first = await race.next() ?? false
                        race.cancelAll()
                        return first
                    }
                    return ended
                }
                #expect(ended, "the completer still waited on the locked row 25 s after the stop")
                #expect(state.heldCount == 0)
                #expect(state.knownClaims(forgetBefore: .now - .seconds(120)) == [HeldJobs.Key(id: ids[0], claim: 1)],
                        "the given-up outcome's claim is remembered as unrecorded")
                #expect(try await Self.states(client, prefix) == ["running", "failed"])
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// At shutdown, past its deadline, a batch written around locked rows gives up exactly
        /// the outcomes not written (the reaper re-runs them), after the one lock wait, not
        /// once the locks go; what was written is posted once.
        @Test func atShutdownOnlyTheLockedOutcomesAreGivenUp() async throws {
            let configuration = Self.configuration("locked-stop")
            let (prefix, ids) = try await Self.runningJobs(3, under: configuration, label: "locked-stop", leaseMillis: 60_000)
            try #require(ids.count == 3)
            let batch = ids.map { Completion(jobID: $0, claim: 1, resolution: .succeeded(chargeID: "ch-locked-\($0)")) }
            try await TestEnvironment.withClient(TestEnvironment.writeURL, maxConnections: 4) { client in
                let store = JobStore(client: client, statementTimeout: .seconds(1), logger: TestEnvironment.logger)
                let recorder = OutcomeRecorder(store: store, configuration: configuration, metrics: WorkerMetrics(), logger: TestEnvironment.logger)
                // The deadline passes once the unlocked outcome is written.
                let stopping = Mutex(false)
                let written = Mutex<[Int64]>([]), givenUp = Mutex<[Int64]>([])
                let took = try await client.withTransaction(logger: TestEnvironment.logger) { connection in
                    try await connection.query("SELECT 1 FROM payment_queue WHERE id IN (\(ids[0]), \(ids[2])) FOR UPDATE", logger: TestEnvironment.logger)
                    let started = ContinuousClock.now
                    await recorder.record(batch, fence: .lease(owner: configuration.owner), givingUp: { stopping.withLock { $0 } },
                                          gaveUp: { done in givenUp.withLock { $0 += done.map(\.jobID) } },
                                          written: { done in
                                              written.withLock { $0 += done.map(\.jobID) }
                                              stopping.withLock { $0 = true }
                                          })
                    return ContinuousClock.now - started
                }
                #expect(written.withLock { $0 } == [ids[1]])
                #expect(givenUp.withLock { $0 }.sorted() == [ids[0], ids[2]].sorted())
                #expect(took < .seconds(4), "gave up after \(took): the write's one lock wait is half a second")
                let states = try await Self.states(client, prefix)
                #expect(states == ["running", "succeeded", "running"])
                let postings = try await client.query("""
                    SELECT job_id, count(*) FROM ledger_entries WHERE job_id IN (\(ids[0]), \(ids[1]), \(ids[2])) GROUP BY job_id
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode((Int64, Int64).self) }
                #expect(postings.map { "\($0.0) \($0.1)" } == ["\(ids[1]) 2"], "one debit and one credit, for the written payment only")
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        static func states(_ client: PostgresClient, _ prefix: String) async throws -> [String] {
            try await client.query("""
                SELECT state FROM payment_jobs WHERE idempotency_key LIKE \(prefix + "-%") ORDER BY idempotency_key
                """, logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) }
        }

        /// The claimer alone claims due jobs, calls the gateway and queues each outcome for
        /// the completer without recording it: the jobs stay `running`, held.
        @Test func theClaimerAloneClaimsCallsAndQueuesOutcomes() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("claimer")
            try await Integration.WorkerTests.enqueue(3, prefix: prefix)
            let configuration = Self.configuration("claimer")
            // Every payment declined: nothing charged that the cleanup then cancels.
            let gateway = try SimulatedGateway(.init(latencyMillis: 0, jitterMillis: 0, declineRate: 1))
            let state = WorkerState()
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let metrics = WorkerMetrics()
                let claimer = Claimer(store: JobStore(client: client, logger: TestEnvironment.logger), state: state,
                                      attempt: PaymentAttempt(gateway: gateway, configuration: configuration, metrics: metrics, logger: TestEnvironment.logger),
                                      configuration: configuration, metrics: metrics, logger: TestEnvironment.logger)
                let running = Task { try await claimer.run() }
                defer { running.cancel() }
                try await TestEnvironment.eventually("three outcomes queued") { state.completions.count == 3 }
                #expect(state.heldCount == 3)
                let owners = try await client.query("""
                    SELECT DISTINCT state || ' ' || lease_owner FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%")
                    """, logger: TestEnvironment.logger).collect().map { try $0.decode(String.self) }
                #expect(owners == ["running \(configuration.owner)"])
            }
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }

        /// All of the worker's services in one ServiceGroup, stopped gracefully with calls in
        /// flight: the group ends without an error (each service ended in its turn), and every
        /// payment it took is recorded, none left running.
        @Test func theWorkerServicesStopInTheirOrder() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            let prefix = TestEnvironment.uniquePrefix("worker-services")
            try await Integration.WorkerTests.enqueue(200, prefix: prefix)
            var configuration = Self.configuration("services")
            configuration.concurrency = 50
            let workers = configuration
            let gateway = try SimulatedGateway(.init(latencyMillis: 300, jitterMillis: 0))
            try await TestEnvironment.withClient(TestEnvironment.writeURL) { client in
                let pool = try WorkerPool(store: JobStore(client: client, logger: TestEnvironment.logger), gateway: gateway,
                                          configuration: workers, logger: TestEnvironment.logger)
                let group = ServiceGroup(configuration: .init(services: pool.services, logger: TestEnvironment.logger))
                let running = Task { try await group.run() }
                try await TestEnvironment.eventually("payments in flight") {
                    try await TestEnvironment.scalar(TestEnvironment.writeURL,
                        "SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'running'") > 0
                }
                await group.triggerGracefulShutdown()
                try await running.value
            }
            let left = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_queue WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'running'")
            let succeeded = try await TestEnvironment.scalar(TestEnvironment.writeURL,
                "SELECT count(*) FROM payment_history WHERE idempotency_key LIKE \(prefix + "-%") AND state = 'succeeded'")
            #expect(left == 0)
            #expect(succeeded > 0)
            #expect(gateway.counts?.accepted == succeeded, "every charge is a succeeded payment's")
            try await QueueReset.cancelLeftovers(prefix: prefix)
        }
    }
}
