import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// The worker pool: claims batches with FOR UPDATE SKIP LOCKED,
/// calls the gateway with no connection held, records outcomes in fenced batches,
/// heartbeats its leases, and on graceful shutdown stops claiming, finishes or releases
/// what it holds, and returns. Expired leases are the LeaseReaper's, reconciling jobs the
/// Reconciler's, partitions the PartitionUpkeep's: services of their own.
public final class WorkerPool: Service, Sendable {
    public let store: JobStore
    public let gateway: any PaymentGateway
    public let configuration: WorkerConfiguration
    public let metrics: WorkerMetrics
    let logger: Logger

    private struct State {
        /// Claimed and not yet recorded, by (job, attempt). Their leases are heartbeated.
        var held = HeldJobs()
        /// Claims whose outcome this process gave up recording: not orphans (a request may
        /// have left for them), left to the reaper, which counts the lost lease. Forgotten
        /// once the reaper must have taken them.
        var unrecorded: [HeldJobs.Key: ContinuousClock.Instant] = [:]
        var gatewayCalls = 0
        var stopRequestedAt: ContinuousClock.Instant?
    }
    private let state = Mutex(State())
    private let completions = BatchQueue<Completion>()
    private let wakeStream: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    /// Retry loops during an outage log their warning once per interval, with a count.
    private let throttle = LogThrottle()
    private let recorder: OutcomeRecorder

    public init(store: JobStore, gateway: any PaymentGateway, configuration: WorkerConfiguration,
                metrics: WorkerMetrics = WorkerMetrics(), logger: Logger) throws {
        let configuration = try configuration.validated()
        // The server-side timeout of every worker statement is the pool's.
        self.store = JobStore(client: store.client, statementTimeout: configuration.effectiveStatementTimeout, logger: store.logger)
        self.gateway = gateway
        self.configuration = configuration
        self.metrics = metrics
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.owner)"
        self.logger = logger
        self.recorder = OutcomeRecorder(store: self.store, configuration: configuration, metrics: metrics, logger: logger)
        (self.wakeStream, self.wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await self.runLoops()
        } onGracefulShutdown: {
            self.requestStop()
        }
    }

    /// Stop claiming; in-flight jobs finish (or are released after the shutdown timeout).
    public func requestStop() {
        let first = state.withLock { s -> Bool in
            guard s.stopRequestedAt == nil else { return false }
            s.stopRequestedAt = .now
            return true
        }
        if first { logger.info("stopping: no new claims; finishing in-flight jobs", metadata: ["in_flight": "\(heldCount)"]) }
        wake.yield()
    }

    var isStopping: Bool { state.withLock { $0.stopRequestedAt != nil } }
    var heldCount: Int { state.withLock { $0.held.count } }

    /// Past the point where a completion that cannot be written is given up (its lease will
    /// expire and the job re-run; the gateway deduplicates the charge).
    var pastGiveUpDeadline: Bool {
        state.withLock { s in
            guard let at = s.stopRequestedAt else { return false }
            return ContinuousClock.now - at > configuration.shutdownTimeout + .seconds(5)
        }
    }

    func runLoops() async {
        logger.info("worker pool started", metadata: [
            "concurrency": "\(configuration.concurrency)", "batch_size": "\(configuration.batchSize)", "lease_s": "\(configuration.lease.seconds)",
        ])
        await withTaskGroup(of: Void.self) { background in
            background.addTask { await self.heartbeatLoop() }
            background.addTask { await self.statsLoop() }
            await withTaskGroup(of: Void.self) { work in
                for _ in 0..<configuration.completers { work.addTask { await self.completeLoop() } }
                await self.claimLoop()
                completions.close()
            }
            background.cancelAll()
        }
        let totals = metrics.snapshot
        logger.info("worker pool stopped", metadata: [
            "succeeded": "\(totals.succeeded)", "failed": "\(totals.failed)", "retried": "\(totals.retried)",
            "released": "\(totals.released)", "still_held": "\(heldCount)",
        ])
    }

    // MARK: claiming

    func claimLoop() async {
        var poll = configuration.idlePollMin
        var dbBackoff = Duration.milliseconds(50)
        var wakeups = wakeStream.makeAsyncIterator()
        let minimumClaim = max(1, min(configuration.batchSize, configuration.concurrency) / 4)
        var lastSweep = ContinuousClock.now
        await withDiscardingTaskGroup { jobs in
            // Graceful stop ends claiming and lets in-flight jobs finish; cancellation (the
            // service group ending because another service failed) ends everything now.
            while !isStopping && !Task.isCancelled {
                if ContinuousClock.now - lastSweep >= configuration.heartbeatInterval {
                    await releaseOrphans()
                    lastSweep = .now
                }
                let free = configuration.concurrency - heldCount
                // Wait for room rather than claiming a handful at a time.
                if free < minimumClaim {
                    _ = await wakeups.next()
                    continue
                }
                let want = min(configuration.batchSize, free)
                let claimed: [ClaimedJob]
                do {
                    let started = ContinuousClock.now
                    claimed = try await withTimeout(clientTimeout) { [store, configuration] in
                        try await store.claim(limit: want, owner: configuration.owner, lease: configuration.lease)
                    }
                    let took = (ContinuousClock.now - started).seconds
                    metrics.recordStage(.claimWait, claimed.map(\.waitedSeconds))
                    metrics.recordStage(.claim, Array(repeating: took, count: claimed.count))
                    dbBackoff = .milliseconds(50)
                } catch {
                    if Task.isCancelled { break }
                    metrics.recordDatabaseError()
                    throttle.log(logger, .warning, "claim failed; retrying",
                                 metadata: ["error": "\(describe(error))", "retry_in_ms": "\(Int(dbBackoff.seconds * 1000))"])
                    try? await Task.sleep(for: dbBackoff)
                    dbBackoff = min(dbBackoff * 2, .seconds(2))
                    continue
                }
                metrics.recordClaim(claimed.count)
                if !claimed.isEmpty {
                    let inFlight = state.withLock { s -> Int in
                        for job in claimed { s.held.hold(job.id, claim: job.claim) }
                        s.gatewayCalls += claimed.count
                        return s.held.count
                    }
                    metrics.setInFlight(inFlight)
                    for job in claimed { jobs.addTask { await self.process(job) } }
                }
                if claimed.isEmpty {
                    // Nothing due: poll again soon, backing off while idle.
                    try? await Task.sleep(for: poll)
                    poll = min(poll * 2, configuration.idlePollMax)
                } else if claimed.count < want {
                    // A trickle: it was all there was, so wait a little for more, but never
                    // back off while work keeps arriving (backing off under a steady 700/s
                    // made the wait for a claim 22 ms at p50 and the whole payment 50).
                    poll = configuration.idlePollMin
                    try? await Task.sleep(for: poll)
                } else {
                    poll = configuration.idlePollMin
                }
            }
            // Stopping: give in-flight gateway calls the shutdown timeout, then abandon them
            // (at once when cancelled).
            let deadline = Task.isCancelled ? ContinuousClock.now : ContinuousClock.now + configuration.shutdownTimeout
            while state.withLock({ $0.gatewayCalls }) > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let abandoned = state.withLock { $0.gatewayCalls }
            if abandoned > 0 {
                logger.warning("shutdown timeout: abandoning in-flight gateway calls; their jobs are released", metadata: ["jobs": "\(abandoned)"])
                jobs.cancelAll()
            }
        }
    }

    // MARK: processing one job

    /// The server's timeout plus a margin: the server ends a slow statement first, and
    /// the client's timer only catches a connection that hangs.
    var clientTimeout: Duration { configuration.effectiveStatementTimeout + .seconds(1) }

    func process(_ job: ClaimedJob) async {
        // The call ends by the gateway timeout or the claim's lease, whichever is first: the
        // gateway is told the same deadline and refuses to charge after it.
        let resolution: Completion.Resolution
        if job.cancelRequested {
            // Cancel asked before this claim: send nothing; the reconciler settles it.
            resolution = .reconcile(error: "cancel requested: not sent again; settling with the gateway")
        } else {
            // The gateway answers by the request's deadline (PaymentGateway's contract): no
            // timer of ours races each call.
            let sent = ContinuousClock.now
            let outcome = await gateway.charge(job.chargeRequest(within: configuration.effectiveGatewayTimeout))
            metrics.recordStage(.gateway, [(ContinuousClock.now - sent).seconds])
            resolution = await resolve(job, outcome)
        }
        state.withLock { $0.gatewayCalls -= 1 }
        completions.append(Completion(jobID: job.id, claim: job.claim, resolution: resolution))
    }

    /// What the gateway's answer means for the payment. Only a decline fails it; every
    /// answer that says "charged" is matched to the payment before it is posted. A job sent
    /// to `reconciling` is asked about only once its last request's deadline has passed:
    /// the reconciler waits for `charge_deadline_at` (see `JobStore.claimReconciling`).
    func resolve(_ job: ClaimedJob, _ outcome: ChargeOutcome) async -> Completion.Resolution {
        let metadata: Logger.Metadata = ["job_id": "\(job.id)", "attempt": "\(job.attempt)"]
        switch outcome {
        case let .accepted(record):
            guard record.isCharge(of: job.idempotencyKey, for: job.payment) else {
                logger.error("the gateway's answer is not this payment's charge; reconciling", metadata: metadata.merging([
                    "charge_id": "\(record.chargeID)", "charge_key": "\(record.key)", "charged": "\(record.amountMinor) \(record.currency)",
                ]) { $1 })
                return .reconcile(error: "the gateway answered with a charge that is not this payment's (\(record.amountMinor) \(record.currency) under '\(record.key.prefix(64))'); reconciling")
            }
            return .succeeded(chargeID: record.chargeID)
        case let .declined(code, reason):
            logger.info("payment declined", metadata: metadata.merging(["reason": "\(reason)", "code": "\(code ?? "none")"]) { $1 })
            return .failed(reason: FailureReason(declineCode: code), error: "declined: \(reason)")
        case let .keyHeldByAnotherCharge(reason):
            logger.error("the gateway holds a charge under this key for another payment; reconciling", metadata: metadata.merging(["error": "\(reason)"]) { $1 })
            return .reconcile(error: "\(reason); reconciling")
        case let .inProgress(reason):
            // An earlier request for this key (sent before this claim) is still being processed.
            // Past the budget: settled with the gateway once every deadline has passed.
            guard Date() < job.giveUpAt else {
                return .reconcile(error: "\(reason); retry budget over: reconciling with the gateway")
            }
            // Its deadline is at most a gateway timeout after it was sent: ask again after it.
            let wait = configuration.effectiveGatewayTimeout + configuration.settleMargin
            logger.debug("an earlier request for this key is still in progress; asking again after its deadline",
                         metadata: metadata.merging(["retry_in_ms": "\(Int(wait.seconds * 1000))"]) { $1 })
            return .delay(error: "\(reason); asking again after its deadline", after: wait)
        case let .transientFailure(reason):
            return await resolveTransientFailure(job, reason: reason)
        case .abandoned:
            return .release(reason: "released at shutdown before the gateway answered")
        }
    }

    /// A transient failure (ours or the gateway's) only delays a payment: retried with the
    /// same key while its attempts in a row last, then settled with the gateway before any
    /// further attempt; past its retry budget, settled too, and failed only if the gateway
    /// proves it holds no charge.
    func resolveTransientFailure(_ job: ClaimedJob, reason: String) async -> Completion.Resolution {
        let pastBudget = Date() >= job.giveUpAt
        guard job.attempt >= job.maxAttempts || pastBudget else {
            let delay = retryDelay(for: job)
            logger.debug("transient gateway failure; will retry", metadata: [
                "job_id": "\(job.id)", "attempt": "\(job.attempt)", "retry_in_ms": "\(Int(delay.seconds * 1000))", "error": "\(reason)",
            ])
            return .retry(error: reason, after: delay)
        }
        // The charge may have gone through with its answer lost. If the gateway already
        // holds it, post it now; otherwise the job goes to `reconciling`: the gateway's "no
        // charge" is only final once no charge of any attempt can still land.
        let record = try? await withTimeout(configuration.effectiveGatewayTimeout) { [gateway] in
            try await gateway.lookup(idempotencyKey: job.idempotencyKey)
        }
        if let record, record.isCharge(of: job.idempotencyKey, for: job.payment) {
            logger.info("the gateway holds the charge: succeeded", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)"])
            return .succeeded(chargeID: record.chargeID)
        }
        let why = pastBudget ? "retry budget over" : "\(job.attempt) attempts in a row"
        logger.warning("outcome unknown: reconciling with the gateway before anything else", metadata: [
            "job_id": "\(job.id)", "attempt": "\(job.attempt)", "error": "\(reason)", "why": "\(why)",
        ])
        return .reconcile(error: "outcome unknown after \(why) (\(reason)); reconciling with the gateway")
    }

    /// Full jitter drawn from (seed, key, attempt), never from timing: a seed replays the
    /// same retry delays, and different payments still spread out.
    func retryDelay(for job: ClaimedJob) -> Duration {
        var random = SeededRandom(seed: fnv1a64("\(job.idempotencyKey)#\(job.attempt)", basis: 0xCBF2_9CE4_8422_2325 ^ configuration.jitterSeed))
        return configuration.backoff.delay(afterAttempt: Int(job.attempt), using: &random)
    }

    // MARK: recording outcomes

    func completeLoop() async {
        while let batch = await completions.take(max: configuration.completionBatch) {
            let started = ContinuousClock.now
            await record(batch)
            let took = (ContinuousClock.now - started).seconds
            metrics.recordStage(.completionWait, batch.map { (started - $0.answeredAt).seconds })
            metrics.recordStage(.completionCommit, Array(repeating: took, count: batch.count))
            let inFlight = state.withLock { s -> Int in
                for c in batch { s.held.release(c.jobID, claim: c.claim) }
                return s.held.count
            }
            metrics.setInFlight(inFlight)
            wake.yield()
        }
    }

    /// Writes a worker's outcomes under its lease; at shutdown, past the give-up deadline,
    /// what cannot be written is left to the reaper.
    func record(_ batch: [Completion]) async {
        await recorder.record(batch, fence: .lease(owner: configuration.owner),
                              givingUp: { self.pastGiveUpDeadline }, gaveUp: { self.markUnrecorded($0) })
    }

    /// Outcomes given up: the jobs stay `running` under this owner until their lease
    /// expires, and must not be taken for orphans meanwhile (their request did leave).
    func markUnrecorded(_ batch: [Completion]) {
        state.withLock { s in for c in batch { s.unrecorded[HeldJobs.Key(id: c.jobID, claim: c.claim)] = .now } }
    }

    // MARK: leases

    func heartbeatLoop() async {
        let interval = configuration.heartbeatInterval
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            // Also a periodic nudge for a claim loop waiting for room, so no lost or
            // missing wake-up can park it for good.
            wake.yield()
            let held = state.withLock { $0.held.all }
            guard !held.isEmpty else { continue }
            do {
                let extended = try await withTimeout(configuration.heartbeatTimeout) { [store, configuration] in
                    try await store.extendLeases(held, owner: configuration.owner, lease: configuration.lease, maxHold: configuration.maxHold)
                }
                if extended < held.count {
                    logger.debug("some leases were lost or held too long and not extended", metadata: ["held": "\(held.count)", "extended": "\(extended)"])
                }
            } catch {
                metrics.recordDatabaseError()
                throttle.log(logger, .warning, "lease heartbeat failed", metadata: ["error": "\(describe(error))"])
            }
        }
    }

    /// Releases claims that committed after this process stopped waiting for them. Runs in
    /// the claim loop, between claims: every claim this process received is in `held` by
    /// then, so the snapshot cannot miss a job whose charge is about to be sent (from the
    /// heartbeat, a claim arriving after the snapshot would be released while charged).
    func releaseOrphans() async {
        let known = state.withLock { s -> [HeldJobs.Key] in
            // By then the reaper has taken them (their leases ran out long before).
            let forgetBefore = ContinuousClock.now - configuration.maxHold * 2
            s.unrecorded = s.unrecorded.filter { $0.value > forgetBefore }
            return s.held.all + Array(s.unrecorded.keys)
        }
        do {
            // A second of margin only: no claim of this process is in flight while it runs.
            let orphans = try await withTimeout(configuration.heartbeatTimeout) { [store, configuration] in
                try await store.releaseOrphans(held: known, owner: configuration.owner, olderThan: .seconds(1),
                                               margin: configuration.settleMargin)
            }
            metrics.recordOrphans(orphans)
            if orphans > 0 {
                logger.warning("released jobs claimed for this process that it never received", metadata: ["jobs": "\(orphans)"])
            }
        } catch {
            metrics.recordDatabaseError()
            throttle.log(logger, .warning, "releasing orphaned claims failed", metadata: ["error": "\(describe(error))"])
        }
    }

    func statsLoop() async {
        var last = metrics.snapshot
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.statsInterval) } catch { return }
            let now = metrics.snapshot
            let finished = (now.succeeded + now.failed) - (last.succeeded + last.failed)
            if finished == 0 && now.inFlight > 0 && now.claimed == last.claimed {
                logger.warning("no progress: holding jobs but none finished or claimed", metadata: [
                    "in_flight": "\(now.inFlight)", "gateway_calls": "\(state.withLock { $0.gatewayCalls })",
                    "pending_outcomes": "\(completions.count)", "database_errors": "\(now.databaseErrors)",
                ])
            }
            guard now != last else { continue }
            logger.info("progress", metadata: [
                "in_flight": "\(now.inFlight)", "succeeded": "\(now.succeeded)", "failed": "\(now.failed)",
                "retried": "\(now.retried)", "jobs_per_s": "\(Int(Double(finished) / configuration.statsInterval.seconds))",
            ])
            last = now
        }
    }
}
