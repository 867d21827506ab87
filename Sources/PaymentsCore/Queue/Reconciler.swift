import Foundation
import Logging
import ServiceLifecycle

/// Settles `reconciling` jobs once their charges can no longer land, every
/// `reconcileInterval`, from every serve with workers: the gateway's record by key posts
/// the job; no record proves it uncharged (queued again within its retry budget, failed
/// past it, cancelled if a cancel was asked); a charge for another amount holds it for an
/// operator, and so does an adopted payment whose charge the provider no longer holds (the
/// provider said it charged the payer: it is never queued to be charged again). Anything
/// else (the gateway unreachable, a request still in progress) leaves the job for the next
/// look.
public struct Reconciler: Service {
    let store: JobStore
    let gateway: any PaymentGateway
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger
    let recorder: OutcomeRecorder
    let throttle = LogThrottle()

    /// - Parameter store: its statement timeout bounds each statement on the server.
    public init(store: JobStore, gateway: any PaymentGateway, configuration: WorkerConfiguration, metrics: WorkerMetrics, logger: Logger) {
        self.store = store
        self.gateway = gateway
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.recorder = OutcomeRecorder(store: store, configuration: configuration, metrics: metrics, logger: logger)
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.reconcileWhileRunning() }
    }

    func reconcileWhileRunning() async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: configuration.reconcileInterval) } catch { return }
            do {
                _ = try await reconcileOnce()
            } catch {
                if Task.isCancelled { return }
                metrics.recordDatabaseError()
                throttle.log(logger, .warning, "reconciliation failed; retrying", metadata: ["error": "\(describe(error))"])
            }
        }
    }

    /// One look: takes up to 100 due `reconciling` jobs, asks the gateway about each, and
    /// records what it proved; returns how many it took. `payments reconcile --adopt` calls
    /// it to settle the payments it re-created.
    public func reconcileOnce() async throws -> Int {
        let due = try await withTimeout(recorder.clientTimeout) { [store, configuration] in
            try await store.claimReconciling(limit: 100, recheckAfter: configuration.effectiveReconcileRecheck,
                                             margin: configuration.settleMargin)
        }
        // The lookups side by side: one slow answer must not hold up the batch.
        let settled = await withTaskGroup(of: Completion?.self) { group in
            for job in due {
                group.addTask {
                    await self.reconcile(job).map { Completion(jobID: job.id, claim: job.claim, resolution: $0) }
                }
            }
            return await group.reduce(into: [Completion]()) { if let c = $1 { $0.append(c) } }
        }
        await recorder.record(settled, fence: .reconciling)
        return due.count
    }

    func reconcile(_ job: ClaimedJob) async -> Completion.Resolution? {
        let metadata: Logger.Metadata = ["job_id": "\(job.id)", "attempt": "\(job.attempt)"]
        do {
            let record = try await withTimeout(configuration.effectiveGatewayTimeout) { [gateway] in
                try await gateway.lookup(idempotencyKey: job.idempotencyKey)
            }
            if job.adopted, record == nil || record?.isRefunded == true {
                // The provider listed this payment's charge when it was adopted: its record
                // gone (or refunded) is the provider's to explain, and charging again could
                // take the money twice.
                logger.error("adopted payment: the provider no longer holds its charge; held for an operator", metadata: metadata)
                return .hold(reason: .adoptedChargeMissing,
                             error: record.map { "the provider refunded charge \($0.chargeID) of this adopted payment: held for an operator (payments resolve)" }
                                 ?? "adopted from the provider's charge, which the provider no longer holds: held for an operator, never charged again by itself (payments resolve)")
            }
            guard let record else {
                // Proven uncharged: every deadline of this payment's requests has passed.
                if job.cancelRequested {
                    logger.info("reconciled: never charged; cancelled as asked", metadata: metadata)
                    return .cancelled(reason: "cancelled: the gateway holds no charge for this payment after every deadline")
                }
                if Date() >= job.giveUpAt {
                    logger.info("reconciled: never charged and the retry budget is over; failed", metadata: metadata)
                    return .failed(reason: .budgetExhausted,
                                   error: "retry budget exhausted: the gateway holds no charge for this payment after every deadline")
                }
                logger.info("reconciled: never charged; queued again within its budget", metadata: metadata)
                return .requeue(error: "not charged yet (the gateway holds no charge after every deadline); queued again within the retry budget")
            }
            guard record.isCharge(of: job.idempotencyKey, for: job.payment) else {
                logger.error("the gateway holds a charge for this key with another amount or currency; held for an operator", metadata: metadata.merging([
                    "charge_id": "\(record.chargeID)", "charged": "\(record.amountMinor) \(record.currency)",
                ]) { $1 })
                return .hold(reason: .chargeMismatch,
                             error: "the gateway holds charge \(record.chargeID) under this key for \(record.amountMinor) \(record.currency), not this payment's \(job.payment.amountMinor) \(job.payment.currency): held for an operator")
            }
            logger.info("reconciled: the gateway holds the charge; posted", metadata: metadata)
            return .succeeded(chargeID: record.chargeID)
        } catch {
            throttle.log(logger, .warning, "reconciliation lookup failed; will ask again", metadata: metadata.merging(["error": "\(describe(error))"]) { $1 })
            return nil
        }
    }
}
