import Logging

/// The one way outcomes reach the database, for the worker pool (under its leases) and
/// the reconciler (under the `reconciling` state): fenced, retried through transient
/// errors, and one row at a time after any other, so one bad row holds back no other.
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

    /// Writes outcomes under `fence` (a worker's lease, or the reconciler's state), retrying
    /// transient errors and falling back to one row at a time on any other, and on a row
    /// lock held elsewhere.
    /// - Parameters:
    ///   - givingUp: whether to stop retrying now (a worker at shutdown, past its deadline).
    ///   - gaveUp: the outcomes not written (cancelled, given up, or a row that cannot be).
    ///   - written: each write's outcomes once it committed (recorded, or fenced off).
    ///   - parkLocked: given, the outcomes still waiting on a row lock held elsewhere after
    ///     the others were written are handed to it instead of retried here (the completer
    ///     retries them apart and goes on); nil, they are retried here until the lock goes.
    func record(_ batch: [Completion], fence: JobStore.Fence, givingUp: @Sendable () -> Bool = { false },
                gaveUp: @Sendable ([Completion]) -> Void = { _ in }, written: @Sendable ([Completion]) -> Void = { _ in },
                parkLocked: (@Sendable ([Completion]) -> Void)? = nil) async {
        var pending = batch
        var delay = Duration.milliseconds(50)
        /// Past the shutdown's deadline: `outcomes` are given up (the reaper re-runs them).
        func giveUpAtShutdown(_ outcomes: [Completion], _ error: any Error) -> Bool {
            guard givingUp() else { return false }
            logger.error("giving up recording outcomes at shutdown; leases will expire and the jobs re-run (the gateway deduplicates)",
                         metadata: ["jobs": "\(outcomes.count)", "error": "\(describe(error))"])
            gaveUp(outcomes)
            return true
        }
        /// A transient failure of `pending`: given up past the shutdown's deadline (true),
        /// else retried after the backoff.
        func backOff(_ error: any Error) async -> Bool {
            metrics.recordDatabaseError()
            if giveUpAtShutdown(pending, error) { return true }
            throttle.log(logger, .warning, "recording outcomes failed; retrying", metadata: ["jobs": "\(pending.count)", "error": "\(describe(error))"])
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(2))
            return false
        }
        while !pending.isEmpty {
            do {
                try await write(pending, fence: fence)
                written(pending)
                return
            } catch where Task.isCancelled {
                logCancelled(pending)
                gaveUp(pending)
                return
            } catch where isLockNotAvailable(error) && (pending.count > 1 || parkLocked != nil) {
                // A row another session holds locked (an operator's open transaction) would
                // hold the whole batch back for as long as it is held: each outcome alone,
                // once, so the others are written; the ones that wait on a lock again go
                // round again (a lock timeout each, so no pass is quick).
                metrics.recordDatabaseError()
                if giveUpAtShutdown(pending, error) { return }
                if pending.count == 1, let parkLocked {
                    parkLocked(pending)
                    return
                }
                lockThrottle.log(logger, .warning, "recording outcomes waited on a row lock held elsewhere; recording them one by one",
                                 metadata: ["jobs": "\(pending.count)"])
                let alone = pending
                var again: [Completion] = []
                var failure: (index: Int, error: any Error)?
                for (index, completion) in alone.enumerated() {
                    do {
                        try await write([completion], fence: fence)
                        written([completion])
                    } catch where Task.isCancelled {
                        let rest = again + alone[index...]
                        logCancelled(rest)
                        gaveUp(rest)
                        return
                    } catch where isLockNotAvailable(error) {
                        again.append(completion)
                        // Each such wait is a lock timeout: the shutdown's deadline is checked
                        // after each, not once a pass.
                        if giveUpAtShutdown(again + alone[(index + 1)...], error) { return }
                    } catch where isTransientDatabaseError(error) {
                        // Not a lock: the database itself. The rest as a batch again, after
                        // the backoff and within the shutdown's deadline.
                        failure = (index, error)
                        break
                    } catch {
                        await record([completion], fence: fence, givingUp: givingUp, gaveUp: gaveUp, written: written, parkLocked: parkLocked)
                    }
                }
                pending = again + (failure.map { alone[$0.index...] } ?? [])
                if failure == nil, !again.isEmpty, let parkLocked {
                    parkLocked(again)
                    return
                }
                if let failure, await backOff(failure.error) { return }
            } catch where isTransientDatabaseError(error) {
                if await backOff(error) { return }
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

    /// One attempt at writing `batch`, counted and logged as recorded.
    private func write(_ batch: [Completion], fence: JobStore.Fence) async throws {
        let done = try await withTimeout(clientTimeout) { [store, configuration] in
            try await store.complete(batch, fence: fence, margin: configuration.settleMargin)
        }
        switch fence {
        case .lease:
            metrics.recordCompleted(done, submitted: batch.count)
            if done.count < batch.count {
                logger.warning("outcomes not recorded: lease lost (another worker owns these jobs now)", metadata: ["jobs": "\(batch.count - done.count)"])
            }
        case .reconciling:
            metrics.recordReconciled(done)
            func count(_ outcome: Completion.Outcome) -> String { "\(done.filter { $0.outcome == outcome }.count)" }
            logger.info("reconciled jobs with the gateway", metadata: [
                "posted": "\(count(.succeeded))", "failed": "\(count(.failed))", "requeued": "\(count(.requeued))",
                "cancelled": "\(count(.cancelled))", "held": "\(count(.held))", "already_settled": "\(batch.count - done.count)",
            ])
        }
    }

    private func logCancelled(_ batch: [Completion]) {
        logger.error("cancelled: outcomes not recorded; leases will expire and the jobs re-run (the gateway deduplicates)",
                     metadata: ["jobs": "\(batch.count)"])
    }
}
