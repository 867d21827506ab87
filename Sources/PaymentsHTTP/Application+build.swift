import Hummingbird
import Logging
import Metrics
import Foundation
import NIOCore
import PaymentsCore
import Prometheus
import ServiceLifecycle

/// The whole server: both pools, the worker pool (unless `--no-workers`) and the HTTP
/// API, as one Hummingbird application, calling the gateway it is given (the client of
/// `settings.gatewayURL`, `externalGateway(_:logger:)`, or any other). Its services shut
/// down in reverse order: the HTTP server first, then the worker pool finishes or
/// releases its jobs, the gateway's client closes, and the pools close last.
public func buildApplication(_ settings: ServerSettings, gateway: any PaymentGateway, logger: Logger) throws -> some ApplicationProtocol {
    let settings = try settings.validated()
    let registry = PrometheusBootstrap.registry
    let database = Database(writeURL: settings.writeURL, readURL: settings.readURL,
                            writePoolSize: settings.writePool, readPoolSize: settings.readPool, logger: logger)
    var services: [any Service] = [PoolService(database.write), PoolService(database.read)]
    // Listed before the worker pool: a gateway with a lifecycle (an HTTP client) shuts
    // down after the pool's last call.
    if let service = gateway as? any Service { services.append(service) }
    // Every serve keeps the partitions ahead, with or without workers: it takes payments.
    let statementTimeout = settings.workers?.effectiveStatementTimeout ?? .seconds(15)
    services.append(PartitionUpkeep(store: JobStore(client: database.write, statementTimeout: statementTimeout, logger: logger),
                                    logger: logger))
    // The archiver's health in /metrics: a restore's reach, watched from every serve.
    services.append(ArchiveMonitor(client: database.write, logger: logger))
    let metrics = WorkerMetrics()
    let api = LivePaymentsAPI(database: database, readFallback: settings.readFallback, metrics: metrics, gateway: gateway,
                              cancelMargin: (settings.workers ?? WorkerConfiguration()).settleMargin,
                              giveUpAfterSeconds: settings.giveUpAfterSeconds, logger: logger)

    if let workers = settings.workers {
        let workers = try workers.validated()
        let store = JobStore(client: database.write, statementTimeout: workers.effectiveStatementTimeout, logger: logger)
        // Before the worker pool: it stops after the pool has finished or released its jobs.
        services.append(LeaseReaper(store: store, configuration: workers, metrics: metrics, logger: logger))
        // Heard new payments ring the claimer's doorbell; it polls with or without them.
        let doorbell = settings.primaryURL.map { url in
            let doorbell = Doorbell()
            services.append(QueueListener(url: url, doorbell: doorbell, metrics: metrics, logger: logger))
            return doorbell
        }
        // Its claimer, completer, lease heartbeat and progress log, in their stopping order.
        services += try WorkerPool(store: store, gateway: gateway, configuration: workers, metrics: metrics, doorbell: doorbell,
                                   logger: logger).services
        // After the worker pool: it stops asking the gateway before the pool drains.
        services.append(Reconciler(store: store, gateway: gateway, configuration: workers, metrics: metrics, logger: logger))
    }
    // After the worker pool: it stops asking its sources before the workers drain.
    let dashboard = DashboardCollector(sources: settings.dashboardSources, database: database, apiReads: api.router.counts,
                                       metrics: metrics, concurrency: settings.workers?.concurrency,
                                       owner: settings.workers?.owner, logger: logger)
    services.append(dashboard)
    logger.info("serve starting", metadata: [
        "write": "\(database.writeURL)", "read": "\(database.readURL)", "workers": "\(settings.workers != nil)",
        "listen": "\(settings.workers == nil ? "-" : settings.primaryURL.map { "\($0)" } ?? "no (polling alone)")",
        "concurrency": "\(settings.workers?.concurrency ?? 0)", "read_fallback": "\(settings.readFallback)",
        "gateway": "\(settings.gatewayURL ?? "in-process (\(type(of: gateway)))")",
    ])
    let (host, port) = (settings.host, settings.port)
    return Application(
        router: buildRouter(api: api, registry: registry, dashboard: dashboard),
        configuration: .init(address: .hostname(host, port: port), serverName: "payments"),
        services: services,
        onServerRunning: { _ in logger.info("HTTP API listening", metadata: ["address": "http://\(host):\(port)"]) },
        logger: logger)
}

/// The client of the external gateway `settings.gatewayURL` names (nil without one),
/// with the settings' deadline and connections.
public func externalGateway(_ settings: ServerSettings, logger: Logger) -> HTTPGateway? {
    settings.gatewayURL.map { url in
        HTTPGateway(baseURL: url, timeout: settings.workers?.effectiveGatewayTimeout ?? .seconds(15),
                    connections: settings.effectiveGatewayConnections, pipeline: settings.gatewayPipeline, logger: logger)
    }
}

/// Whether the server could not bind its address because another process holds it.
public func isAddressInUse(_ error: any Error) -> Bool {
    if let error = error as? IOError { return error.errnoCode == EADDRINUSE }
    return "\(error)".contains("Address already in use")
}

/// swift-metrics takes one bootstrap per process: the first server built makes it.
enum PrometheusBootstrap {
    static let registry: PrometheusCollectorRegistry = {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return registry
    }()
}
