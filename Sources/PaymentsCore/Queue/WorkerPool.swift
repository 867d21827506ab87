import Logging
import ServiceLifecycle

/// One serve's workers, as services that share a `WorkerState`: the claimer (claims
/// batches with FOR UPDATE SKIP LOCKED and calls the gateway with no connection held), the
/// completer (records outcomes in fenced batches), the lease heartbeat and the progress
/// log. Expired leases are the LeaseReaper's, reconciling jobs the Reconciler's,
/// partitions the PartitionUpkeep's.
public struct WorkerPool: Sendable {
    /// In the order a ServiceGroup must run them: it stops services in reverse, each once
    /// the one after it has ended. So the claimer stops first (no new claims; its gateway
    /// calls finish or are abandoned, their outcomes queued), then the completer records
    /// what is left, and the heartbeat keeps every lease alive until then.
    public let services: [any Service]

    /// - Parameter doorbell: rung by a `QueueListener` when payments are announced; nil: the
    ///   claimer finds them by polling alone.
    public init(store: JobStore, gateway: any PaymentGateway, configuration: WorkerConfiguration,
                metrics: WorkerMetrics = WorkerMetrics(), doorbell: Doorbell? = nil, logger: Logger) throws {
        let configuration = try configuration.validated()
        // The server-side timeout of every worker statement is the pool's.
        let store = JobStore(client: store.client, statementTimeout: configuration.effectiveStatementTimeout, logger: store.logger)
        var logger = logger
        logger[metadataKey: "worker"] = "\(configuration.owner)"
        let state = WorkerState()
        let recorder = OutcomeRecorder(store: store, configuration: configuration, metrics: metrics, logger: logger)
        let attempt = PaymentAttempt(gateway: gateway, configuration: configuration, metrics: metrics, logger: logger)
        services = [
            WorkerProgress(state: state, configuration: configuration, metrics: metrics, logger: logger),
            LeaseHeartbeat(store: store, state: state, configuration: configuration, metrics: metrics, logger: logger),
            Completer(state: state, recorder: recorder, configuration: configuration, metrics: metrics, logger: logger),
            Claimer(store: store, state: state, attempt: attempt, configuration: configuration, metrics: metrics, logger: logger,
                    doorbell: doorbell),
        ]
    }
}
