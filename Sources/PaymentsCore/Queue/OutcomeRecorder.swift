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

    /// A statement's server-side timeout and a second: a pooler that does not answer at all.
    var clientTimeout: Duration { store.statementTimeout + .seconds(1) }

    /// Writes outcomes under `fence` (a worker's lease, or the reconciler's state), retrying
    /// transient errors and falling back to one row at a time on any other.
    /// - Parameters:
    ///   - givingUp: whether to stop retrying now (a worker at shutdown, past its deadline).
    ///   - gaveUp: the outcomes not written (cancelled, given up, or a row that cannot be).
    func record(_ batch: [Completion], fence: JobStore.Fence, givingUp: @Sendable () -> Bool = { false },
                gaveUp: @Sendable ([Completion]) -> Void = { _ in }) async {
        guard !batch.isEmpty else { return }
        var delay = Duration.milliseconds(50)
        while true {
            do {
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
                return
            } catch where Task.isCancelled {
                logger.error("cancelled: outcomes not recorded; leases will expire and the jobs re-run (the gateway deduplicates)",
                             metadata: ["jobs": "\(batch.count)"])
                gaveUp(batch)
                return
            } catch where isTransientDatabaseError(error) {
                metrics.recordDatabaseError()
                if givingUp() {
                    logger.error("giving up recording outcomes at shutdown; leases will expire and the jobs re-run (the gateway deduplicates)",
                                 metadata: ["jobs": "\(batch.count)", "error": "\(describe(error))"])
                    gaveUp(batch)
                    return
                }
                throttle.log(logger, .warning, "recording outcomes failed; retrying", metadata: ["jobs": "\(batch.count)", "error": "\(describe(error))"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            } catch {
                // Not transient: record one by one so that one bad row cannot hold back the rest.
                metrics.recordDatabaseError()
                guard batch.count > 1 else {
                    logger.error("cannot record outcome; the lease will expire and the job re-run", metadata: [
                        "job_id": "\(batch[0].jobID)", "claim": "\(batch[0].claim)", "error": "\(describe(error))",
                    ])
                    gaveUp(batch)
                    return
                }
                for completion in batch { await record([completion], fence: fence, givingUp: givingUp, gaveUp: gaveUp) }
                return
            }
        }
    }

}
