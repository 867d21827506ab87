import Logging
import ServiceLifecycle

/// Claims due jobs in batches (FOR UPDATE SKIP LOCKED) while there is room under the
/// concurrency, runs each job's gateway attempt in a task of its own with no database
/// connection held, and queues its outcome for the completer. On graceful shutdown it stops
/// claiming, gives the calls in flight the shutdown timeout, abandons the rest (released,
/// their attempt refunded), and closes the completion queue.
struct Claimer: Service {
    let store: JobStore
    let state: WorkerState
    let attempt: PaymentAttempt
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    /// Rung when new payments are announced (QueueListener): ends a wait between polls
    /// early. nil: polling alone.
    var doorbell: Doorbell?
    /// Retry loops during an outage log their warning once per interval, with a count.
    let throttle = LogThrottle()

    func run() async throws {
        logger.info("worker pool started", metadata: [
            "concurrency": "\(configuration.concurrency)", "batch_size": "\(configuration.batchSize)", "lease_s": "\(configuration.lease.seconds)",
        ])
        await withGracefulShutdownHandler {
            await self.claimWhileRunning()
        } onGracefulShutdown: {
            if self.state.requestStop() {
                self.logger.info("stopping: no new claims; finishing in-flight jobs", metadata: ["in_flight": "\(self.state.heldCount)"])
            }
            // Out of a wait between polls now, not when the poll was due.
            self.doorbell?.ring()
        }
        state.completions.close()
    }

    /// The server's timeout plus a margin: the server gives up on a slow claim first (it
    /// ends its lock waits and refuses to commit past the timeout, migration 0022), and the
    /// client's timer only catches a connection that hangs.
    var clientTimeout: Duration { configuration.effectiveStatementTimeout + .seconds(1) }

    func claimWhileRunning() async {
        var poll = IdlePoll(minimum: configuration.idlePollMin, busyMinimum: configuration.idlePollBusyMin,
                            maximum: configuration.idlePollMax, patience: configuration.idlePollPatience)
        var dbBackoff = Duration.milliseconds(50)
        var wakeups = state.wakeups.makeAsyncIterator()
        let minimumClaim = max(1, min(configuration.batchSize, configuration.concurrency) / 4)
        var lastSweep = ContinuousClock.now
        await withDiscardingTaskGroup { jobs in
            // Graceful stop ends claiming and lets in-flight jobs finish; cancellation (the
            // service group ending because another service failed) ends everything now.
            while !state.isStopping && !Task.isCancelled {
                if ContinuousClock.now - lastSweep >= configuration.heartbeatInterval {
                    await releaseOrphans()
                    lastSweep = .now
                }
                let free = configuration.concurrency - state.heldCount
                // Wait for room rather than claiming a handful at a time.
                if free < minimumClaim {
                    _ = await wakeups.next()
                    continue
                }
                let want = min(configuration.batchSize, free)
                let claimed: [ClaimedJob]
                let started = ContinuousClock.now
                do {
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
                    metrics.setInFlight(state.hold(claimed, leaseEnds: started + configuration.lease))
                    // Each task captures the job and two references, not this struct: a copy
                    // of the claimer per task was most of a job's memory in flight.
                    let (attempt, state) = (self.attempt, self.state)
                    for job in claimed { jobs.addTask { await Self.process(job, attempt: attempt, state: state) } }
                }
                // A trickle or nothing: wait a little for more, backing off only once the
                // queue has stayed empty a while (backing off under a steady 700/s made the
                // wait for a claim 22 ms at p50 and the whole payment 50).
                if let wait = poll.next(claimed: claimed.count, wanted: want, now: .now) {
                    if let doorbell { await doorbell.wait(upTo: wait) } else { try? await Task.sleep(for: wait) }
                }
            }
            // Stopping: give in-flight gateway calls the shutdown timeout, then abandon them
            // (at once when cancelled).
            let deadline = Task.isCancelled ? ContinuousClock.now : ContinuousClock.now + configuration.shutdownTimeout
            while state.gatewayCalls > 0 && ContinuousClock.now < deadline && !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(10))
            }
            let abandoned = state.gatewayCalls
            if abandoned > 0 {
                logger.warning("shutdown timeout: abandoning in-flight gateway calls; their jobs are released", metadata: ["jobs": "\(abandoned)"])
                jobs.cancelAll()
            }
        }
    }

    static func process(_ job: ClaimedJob, attempt: PaymentAttempt, state: WorkerState) async {
        // Only the two numbers are kept across the call, not the job (its frame is held by
        // every job in flight).
        let (id, claim) = (job.id, job.claim)
        let resolution = await attempt.run(job)
        state.gatewayCallEnded()
        state.completions.append(Completion(jobID: id, claim: claim, resolution: resolution))
    }

    /// Releases claims that committed after this process stopped waiting for them. Runs
    /// here, between claims, not in the heartbeat or the reaper: every claim this process
    /// received is held by then, so the snapshot cannot miss a job whose charge is about to
    /// be sent (from another loop, a claim arriving after the snapshot would be released
    /// while charged).
    func releaseOrphans() async {
        let known = state.knownClaims(forgetBefore: ContinuousClock.now - configuration.maxHold * 2)
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
}
