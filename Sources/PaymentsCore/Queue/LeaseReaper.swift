import Logging
import ServiceLifecycle

/// Returns jobs whose lease ran out (their worker died, stalled or was cut off) to the
/// queue, every `reapInterval`, from every serve with workers (`SKIP LOCKED`: safe from
/// several at once). A job that lost `maxLeaseLosses` leases is settled with the gateway
/// (`reconciling`) before it runs again: a worker may have charged it.
public struct LeaseReaper: Service {
    let store: JobStore
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger

    /// - Parameter store: its statement timeout bounds each statement on the server.
    public init(store: JobStore, configuration: WorkerConfiguration, metrics: WorkerMetrics, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.reapWhileRunning() }
    }

    func reapWhileRunning() async {
        let bound = store.statementTimeout + .seconds(1)
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.reapInterval) } catch { return }
            do {
                var reaped = 0
                repeat {
                    reaped = try await withTimeout(bound) { [store, configuration] in
                        try await store.reapExpiredLeases(maxLeaseLosses: configuration.maxLeaseLosses, settleAfter: configuration.settleMargin)
                    }
                    metrics.recordReaped(reaped)
                    if reaped > 0 { logger.info("returned jobs with expired leases to the queue", metadata: ["jobs": "\(reaped)"]) }
                } while reaped >= 1_000 && !Task.isCancelled
            } catch {
                metrics.recordDatabaseError()
                logger.debug("reaper failed", metadata: ["error": "\(describe(error))"])
            }
        }
    }
}
