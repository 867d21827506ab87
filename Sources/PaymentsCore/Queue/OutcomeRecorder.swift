import Logging

/// The one way outcomes reach the database, for the worker pool (under its leases) and
/// the reconciler (under the `reconciling` state): fenced, retried through transient
/// errors, and one row at a time after any other, so one bad row holds back no other; a
/// row locked elsewhere holds back no other either (the database writes the rest).
struct OutcomeRecorder: Sendable {
    let store: JobStore
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    /// Retries during an outage log their warning once per interval, with a count.
    let throttle = LogThrottle()
    let lockThrottle = LogThrottle()

    /// A statement's server-side timeout and a second: a pooler that does not answer at all.
    var clientTimeout: Duration { store.statementTimeout + .seconds(1) }

    /// Writes outcomes under `fence`, retrying transient errors and falling back to one row
    /// at a time on any other. A row another session holds locked past the write's wait
    /// (a second, migration 0023) holds back no other outcome: the others are written.
    /// - Parameters:
    ///   - givingUp: whether to stop retrying now (a worker at shutdown, past its deadline).
    ///   - gaveUp: the outcomes not written (cancelled, given up, or a row that cannot be).
    ///   - written: each write's outcomes once it committed (recorded, or fenced off).
    ///   - parkLocked: given, the outcomes whose rows are still locked elsewhere are handed
    ///     to it instead of retried here (the completer retries them apart and goes on);
    ///     nil, they are retried here until the lock goes.
    func record(_ batch: [Completion], fence: JobStore.Fence, givingUp: @Sendable () -> Bool = { false },
                gaveUp: @Sendable ([Completion]) -> Void = { _ in }, written: @Sendable ([Completion]) -> Void = { _ in },
                parkLocked: (@Sendable ([Completion]) -> Void)? = nil) async {
        var pending = batch
        var delay = Duration.milliseconds(50)
        /// Past the shutdown's deadline: `outcomes` are given up (the reaper re-runs them).
        func giveUpAtShutdown(_ outcomes: [Completion], _ reason: String) -> Bool {
            guard givingUp() else { return false }
            logger.error("giving up recording outcomes at shutdown; leases will expire and the jobs re-run (the gateway deduplicates)",
                         metadata: ["jobs": "\(outcomes.count)", "error": "\(reason)"])
            gaveUp(outcomes)
            return true
        }
        /// Waits before `pending` goes again, unless given up past the shutdown's deadline (true).
        func backOff(_ reason: String) async -> Bool {
            if giveUpAtShutdown(pending, reason) { return true }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
            return false
        }
        while !pending.isEmpty {
            do {
                let locked = try await write(pending, fence: fence)
                guard !locked.isEmpty else {
                    written(pending)
                    return
                }
                let held = Set(locked)
                let done = pending.filter { !held.contains($0.jobID) }
                pending = pending.filter { held.contains($0.jobID) }
                if !done.isEmpty { written(done) }
                lockThrottle.log(logger, .warning, "outcomes wait on queue rows another session holds locked; the others are recorded",
                                 metadata: ["jobs": "\(pending.count)", "job_id": "\(pending[0].jobID)"])
                guard let parkLocked else {
                    if await backOff("rows locked by another session") { return }
                    continue
                }
                // Checked before parking too: the parked outcomes' task ends only once what it
                // takes is written or given up.
                if !giveUpAtShutdown(pending, "rows locked by another session") { parkLocked(pending) }
                return
            } catch where Task.isCancelled {
                logCancelled(pending)
                gaveUp(pending)
                return
            } catch where isTransientDatabaseError(error) {
                metrics.recordDatabaseError()
                throttle.log(logger, .warning, "recording outcomes failed; retrying", metadata: ["jobs": "\(pending.count)", "error": "\(describe(error))"])
                if await backOff(describe(error)) { return }
            } catch {
                // Not transient: record one by one so that one bad row cannot hold back the rest.
                metrics.recordDatabaseError()
                guard pending.count > 1 else {
                    logger.error("cannot record outcome; the lease will expire and the job re-run", metadata: [
                        "job_id": "\(pending[0].jobID)", "claim": "\(pending[0].claim)", "error": "\(describe(error))",
                    ])
                    gaveUp(pending)
                    return
                }
                for completion in pending { await record([completion], fence: fence, givingUp: givingUp, gaveUp: gaveUp, written: written, parkLocked: parkLocked) }
                return
            }
        }
    }

    /// One attempt at writing `batch`, counted and logged as recorded; the ids of the jobs
    /// whose rows were locked elsewhere (nothing written for them).
    private func write(_ batch: [Completion], fence: JobStore.Fence) async throws -> [Int64] {
        let write = try await withTimeout(clientTimeout) { [store, configuration] in
            try await store.complete(batch, fence: fence, margin: configuration.settleMargin)
        }
        let done = write.recorded, submitted = batch.count - write.locked.count
        switch fence {
        case .lease:
            metrics.recordCompleted(done, submitted: submitted)
            if done.count < submitted {
                logger.warning("outcomes not recorded: lease lost (another worker owns these jobs now)", metadata: ["jobs": "\(submitted - done.count)"])
            }
        case .reconciling:
            metrics.recordReconciled(done)
            guard submitted > 0 else { break }
            func count(_ outcome: Completion.Outcome) -> String { "\(done.filter { $0.outcome == outcome }.count)" }
            logger.info("reconciled jobs with the gateway", metadata: [
                "posted": "\(count(.succeeded))", "failed": "\(count(.failed))", "requeued": "\(count(.requeued))",
                "cancelled": "\(count(.cancelled))", "held": "\(count(.held))", "already_settled": "\(submitted - done.count)",
            ])
        }
        return write.locked
    }

    private func logCancelled(_ batch: [Completion]) {
        logger.error("cancelled: outcomes not recorded; leases will expire and the jobs re-run (the gateway deduplicates)",
                     metadata: ["jobs": "\(batch.count)"])
    }
}
