import Logging
import ServiceLifecycle

/// Extends the leases of the claims this worker holds that end within
/// `leaseRenewalWindow`, every `heartbeatInterval`, so a long gateway call keeps its job
/// (up to `maxHold`) while a payment answered in milliseconds is never locked by a beat;
/// runs until the completer has recorded the last outcome. Also nudges the claimer, so no
/// lost wake-up can park it for good.
struct LeaseHeartbeat: Service {
    let store: JobStore
    let state: WorkerState
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    let throttle = LogThrottle()

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.beatWhileRunning() }
    }

    func beatWhileRunning() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.heartbeatInterval) } catch { return }
            state.wakeClaimer()
            let started = ContinuousClock.now
            let due = state.claimsDue(before: started + configuration.leaseRenewalWindow)
            guard !due.isEmpty else { continue }
            do {
                // In transactions of a bounded size: an outcome whose row a beat holds waits
                // for the beat's commit (one statement for 100,000 held took 2.6 s), and the
                // leases a chunk extended count even if a later chunk fails.
                var extendedCount = 0
                for chunk in due.chunks(of: configuration.leaseExtensionBatch) {
                    let sent = ContinuousClock.now
                    let left = started + configuration.heartbeatTimeout - sent
                    guard left > .zero else { throw TimeoutError() }
                    let extended = try await withTimeout(left) { [store, configuration] in
                        try await store.extendLeases(chunk, owner: configuration.owner, lease: configuration.lease, maxHold: configuration.maxHold)
                    }
                    // The database's lease runs from its statement's start, after `sent`.
                    state.leasesExtended(extended, until: sent + configuration.lease)
                    extendedCount += extended.count
                }
                if extendedCount < due.count {
                    logger.debug("some leases were lost or held too long and not extended", metadata: ["due": "\(due.count)", "extended": "\(extendedCount)"])
                }
            } catch {
                metrics.recordDatabaseError()
                throttle.log(logger, .warning, "lease heartbeat failed", metadata: ["error": "\(describe(error))"])
            }
        }
    }
}
