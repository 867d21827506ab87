import Logging
import ServiceLifecycle

/// Extends the leases of every claim this worker holds, every `heartbeatInterval`, so a
/// long gateway call keeps its job (up to `maxHold`); runs until the completer has recorded
/// the last outcome. Also nudges the claimer, so no lost wake-up can park it for good.
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
            let held = state.heldClaims
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
}
