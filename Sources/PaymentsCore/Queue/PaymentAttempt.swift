import Foundation
import Logging

/// One claimed job's go at the gateway, and what its answer means for the payment. Only a
/// decline fails a payment; every answer that says "charged" is matched to the payment
/// before it is posted; anything our side or the gateway's transient faults cause only
/// delays it, or sends it to be settled with the gateway.
///
/// A class: every job's task holds it by reference (as a struct, each of 100,000 tasks
/// in flight carried its own copy of the configuration, logger and gateway).
final class PaymentAttempt: Sendable {
    let gateway: any PaymentGateway
    let configuration: WorkerConfiguration
    let metrics: WorkerMetrics
    let logger: Logger

    init(gateway: any PaymentGateway, configuration: WorkerConfiguration, metrics: WorkerMetrics, logger: Logger) {
        self.gateway = gateway
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
    }

    /// The call ends by the gateway timeout or the claim's lease, whichever is first: the
    /// gateway is told the same deadline and refuses to charge after it (PaymentGateway's
    /// contract), so no timer of ours races each call.
    func run(_ job: ClaimedJob) async -> Completion.Resolution {
        if job.cancelRequested {
            // Cancel asked before this claim: send nothing; the reconciler settles it.
            return .reconcile(error: "cancel requested: not sent again; settling with the gateway")
        }
        let sent = ContinuousClock.now
        let outcome = await gateway.charge(job.chargeRequest(within: configuration.effectiveGatewayTimeout))
        metrics.recordStage(.gateway, CollectionOfOne((ContinuousClock.now - sent).seconds))
        return await resolve(job, outcome)
    }

    /// What the gateway's answer means for the payment. Only a decline fails it; every
    /// answer that says "charged" is matched to the payment before it is posted. A job sent
    /// to `reconciling` is asked about only once its last request's deadline has passed:
    /// the reconciler waits for `charge_deadline_at` (see `JobStore.claimReconciling`).
    // Not inlined into `run`: its locals would then be in the frame every job keeps
    // while its call is in flight.
    @inline(never)
    func resolve(_ job: ClaimedJob, _ outcome: ChargeOutcome) async -> Completion.Resolution {
        let metadata: Logger.Metadata = ["job_id": "\(job.id)", "attempt": "\(job.attempt)"]
        switch outcome {
        case let .accepted(record):
            guard record.isCharge(of: job.idempotencyKey, for: job.payment) else {
                logger.error("the gateway's answer is not this payment's charge; reconciling", metadata: metadata.merging([
                    "charge_id": "\(record.chargeID)", "charge_key": "\(record.key)", "charged": "\(record.amountMinor) \(record.currency)",
                ]) { $1 })
                return .reconcile(error: "the gateway answered with a charge that is not this payment's (\(record.amountMinor) \(record.currency) under '\(record.key.prefix(64))'); reconciling")
            }
            return .succeeded(chargeID: record.chargeID)
        case let .declined(code, reason):
            logger.info("payment declined", metadata: metadata.merging(["reason": "\(reason)", "code": "\(code ?? "none")"]) { $1 })
            return .failed(reason: FailureReason(declineCode: code), error: "declined: \(reason)")
        case let .keyHeldByAnotherCharge(reason):
            logger.error("the gateway holds a charge under this key for another payment; reconciling", metadata: metadata.merging(["error": "\(reason)"]) { $1 })
            return .reconcile(error: "\(reason); reconciling")
        case let .inProgress(reason):
            // An earlier request for this key (sent before this claim) is still being processed.
            // Past the budget: settled with the gateway once every deadline has passed.
            guard Date() < job.giveUpAt else {
                return .reconcile(error: "\(reason); retry budget over: reconciling with the gateway")
            }
            // Its deadline is at most a gateway timeout after it was sent: ask again after it.
            let wait = configuration.effectiveGatewayTimeout + configuration.settleMargin
            logger.debug("an earlier request for this key is still in progress; asking again after its deadline",
                         metadata: metadata.merging(["retry_in_ms": "\(Int(wait.seconds * 1000))"]) { $1 })
            return .delay(error: "\(reason); asking again after its deadline", after: wait)
        case let .transientFailure(reason):
            return await resolveTransientFailure(job, reason: reason)
        case .abandoned:
            return .release(reason: "released at shutdown before the gateway answered")
        }
    }

    /// A transient failure (ours or the gateway's) only delays a payment: retried with the
    /// same key while its attempts in a row last, then settled with the gateway before any
    /// further attempt; past its retry budget, settled too, and failed only if the gateway
    /// proves it holds no charge.
    func resolveTransientFailure(_ job: ClaimedJob, reason: String) async -> Completion.Resolution {
        let pastBudget = Date() >= job.giveUpAt
        guard job.attempt >= job.maxAttempts || pastBudget else {
            let delay = retryDelay(for: job)
            logger.debug("transient gateway failure; will retry", metadata: [
                "job_id": "\(job.id)", "attempt": "\(job.attempt)", "retry_in_ms": "\(Int(delay.seconds * 1000))", "error": "\(reason)",
            ])
            return .retry(error: reason, after: delay)
        }
        // The charge may have gone through with its answer lost. If the gateway already
        // holds it, post it now; otherwise the job goes to `reconciling`: the gateway's "no
        // charge" is only final once no charge of any attempt can still land.
        let record = try? await withTimeout(configuration.effectiveGatewayTimeout) { [gateway] in
            try await gateway.lookup(idempotencyKey: job.idempotencyKey)
        }
        if let record, record.isCharge(of: job.idempotencyKey, for: job.payment) {
            logger.info("the gateway holds the charge: succeeded", metadata: ["job_id": "\(job.id)", "attempt": "\(job.attempt)"])
            return .succeeded(chargeID: record.chargeID)
        }
        let why = pastBudget ? "retry budget over" : "\(job.attempt) attempts in a row"
        logger.warning("outcome unknown: reconciling with the gateway before anything else", metadata: [
            "job_id": "\(job.id)", "attempt": "\(job.attempt)", "error": "\(reason)", "why": "\(why)",
        ])
        return .reconcile(error: "outcome unknown after \(why) (\(reason)); reconciling with the gateway")
    }

    /// Full jitter drawn from (seed, key, attempt), never from timing: a seed replays the
    /// same retry delays, and different payments still spread out.
    func retryDelay(for job: ClaimedJob) -> Duration {
        var random = SeededRandom(seed: fnv1a64("\(job.idempotencyKey)#\(job.attempt)", basis: 0xCBF2_9CE4_8422_2325 ^ configuration.jitterSeed))
        return configuration.backoff.delay(afterAttempt: Int(job.attempt), using: &random)
    }
}
