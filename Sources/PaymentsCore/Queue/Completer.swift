import Synchronization
import Logging
import ServiceLifecycle

/// Records the outcomes the claimer's jobs queue, in batches (`completers` at once), fenced
/// on this worker's leases, and lets go of their claims so the claimer has room again. It
/// ends when the claimer has closed the queue and every outcome is recorded or given up
/// (at shutdown, past the shutdown timeout and five seconds, an outcome that cannot be
/// written is left to the reaper: its lease expires and the job runs again under its key).
struct Completer: Service {
    let state: WorkerState
    let recorder: OutcomeRecorder
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.recordLockedWhileOpen() }
            await withTaskGroup(of: Void.self) { completers in
                for _ in 0..<configuration.completers { completers.addTask { await self.recordWhileOpen() } }
            }
            state.lockedCompletions.close()
        }
        let totals = metrics.snapshot
        logger.info("worker pool stopped", metadata: [
            "succeeded": "\(totals.succeeded)", "failed": "\(totals.failed)", "retried": "\(totals.retried)",
            "released": "\(totals.released)", "still_held": "\(state.heldCount)",
        ])
        // A ServiceGroup takes a service that ends before its own turn to stop for a
        // failure: the queue closes as the claimer ends, which may be just before that turn.
        try? await gracefulShutdown()
    }

    func recordWhileOpen() async {
        while let batch = await state.completions.take(max: configuration.completionBatch) {
            let started = ContinuousClock.now
            await recordParkingLocked(batch)
            let took = (ContinuousClock.now - started).seconds
            metrics.recordStage(.completionWait, batch.map { (started - $0.answeredAt).seconds })
            metrics.recordStage(.completionCommit, Array(repeating: took, count: batch.count))
        }
    }

    /// Outcomes whose rows another session holds locked (an operator's open transaction),
    /// retried by this one task, a round a second, until each lock goes or the shutdown's
    /// deadline passes, so the completers go on with every other outcome. A round waits a
    /// second at most on such a lock, however many are held (migration 0023), and parks
    /// again what is still locked, so one long lock holds back no outcome parked after it.
    func recordLockedWhileOpen() async {
        while let locked = await state.lockedCompletions.take(max: configuration.completionBatch) {
            if await recordParkingLocked(locked) { try? await Task.sleep(for: .seconds(1)) }
        }
    }

    /// Records `batch` under this worker's leases and lets go of the claims of what was
    /// written or given up. What waits on a row another session holds locked is parked for
    /// `recordLockedWhileOpen`, its claim held; true if any was.
    @discardableResult
    func recordParkingLocked(_ batch: [Completion]) async -> Bool {
        let parked = Mutex<Set<HeldJobs.Key>>([])
        await recorder.record(batch, fence: .lease(owner: configuration.owner),
                              givingUp: { self.pastGiveUpDeadline }, gaveUp: { self.state.markUnrecorded($0) },
                              written: { done in
                                  guard done.count < batch.count else { return }
                                  self.metrics.setInFlight(self.state.release(done))
                                  self.state.wakeClaimer()
                              },
                              parkLocked: { locked in
                                  parked.withLock { $0.formUnion(locked.map(\.key)) }
                                  self.state.lockedCompletions.append(contentsOf: locked)
                              })
        let left = parked.withLock { $0 }
        metrics.setInFlight(state.release(left.isEmpty ? batch : batch.filter { !left.contains($0.key) }))
        state.wakeClaimer()
        return !left.isEmpty
    }

    /// Past the point where a completion that cannot be written is given up (its lease will
    /// expire and the job re-run; the gateway deduplicates the charge).
    var pastGiveUpDeadline: Bool { state.stoppingLongerThan(configuration.shutdownTimeout + .seconds(5)) }
}
