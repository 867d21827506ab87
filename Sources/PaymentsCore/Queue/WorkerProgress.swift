import Logging
import ServiceLifecycle

/// Logs the workers' progress every `statsInterval`, and warns when they hold jobs but
/// neither finish nor claim any (a stuck gateway or database shows here first).
struct WorkerProgress: Service {
    let state: WorkerState
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger

    func run() async throws {
        await cancelWhenGracefulShutdown { await self.logWhileRunning() }
    }

    func logWhileRunning() async {
        var last = metrics.snapshot
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.statsInterval) } catch { return }
            let now = metrics.snapshot
            let finished = (now.succeeded + now.failed) - (last.succeeded + last.failed)
            if finished == 0 && now.inFlight > 0 && now.claimed == last.claimed {
                logger.warning("no progress: holding jobs but none finished or claimed", metadata: [
                    "in_flight": "\(now.inFlight)", "gateway_calls": "\(state.gatewayCalls)",
                    "pending_outcomes": "\(state.completions.count)", "database_errors": "\(now.databaseErrors)",
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
