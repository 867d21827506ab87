import Hummingbird
import Logging
import Metrics
import Foundation
import NIOCore
import PaymentsCore
import Prometheus
import ServiceLifecycle

/// The whole server: both pools, the worker pool (unless `--no-workers`) and the HTTP
/// API, as one Hummingbird application. Its services shut down in reverse order: the
/// HTTP server first, then the worker pool finishes or releases its jobs, and the pools
/// close last.
public func buildApplication(_ settings: ServerSettings, logger: Logger) throws -> some ApplicationProtocol {
    let settings = try settings.validated()
    let registry = PrometheusBootstrap.registry
    let database = Database(writeURL: settings.writeURL, readURL: settings.readURL,
                            writePoolSize: settings.writePool, readPoolSize: settings.readPool, logger: logger)
    var services: [any Service] = [PoolService(database.write), PoolService(database.read)]
    let gateway: any PaymentGateway
    let simulated: SimulatedGateway?
    if let url = settings.gatewayURL {
        let client = HTTPGateway(baseURL: url, timeout: settings.workers?.effectiveGatewayTimeout ?? .seconds(15),
                                 connections: settings.effectiveGatewayConnections, logger: logger)
        // Listed before the worker pool: it shuts down after the pool's last call.
        services.append(client)
        (gateway, simulated) = (client, nil)
    } else {
        let local = try SimulatedGateway(settings.gateway)
        (gateway, simulated) = (local, local)
        // Its deduplication is this process's alone (its journal is locked to it): a second
        // serve on the same queue would charge a key again.
        logger.warning("the in-process simulated gateway is for one serve process only: several serves share `payments gateway` through --gateway-url")
    }
    // Every serve keeps the partitions ahead, with or without workers: it takes payments.
    let statementTimeout = settings.workers?.effectiveStatementTimeout ?? .seconds(15)
    services.append(PartitionUpkeep(store: JobStore(client: database.write, statementTimeout: statementTimeout, logger: logger),
                                    logger: logger))
    let metrics = WorkerMetrics()
    let api = LivePaymentsAPI(database: database, readFallback: settings.readFallback, metrics: metrics, gateway: simulated,
                              cancelMargin: (settings.workers ?? WorkerConfiguration()).settleMargin,
                              giveUpAfterSeconds: settings.giveUpAfterSeconds, logger: logger)

    if let workers = settings.workers {
        services.append(try WorkerPool(store: JobStore(client: database.write, logger: logger), gateway: gateway,
                                       configuration: workers, metrics: metrics, logger: logger))
    }
    // After the worker pool: it stops asking its sources before the workers drain.
    let dashboard = DashboardCollector(sources: settings.dashboardSources, database: database, apiReads: api.router.counts,
                                       metrics: metrics, concurrency: settings.workers?.concurrency,
                                       owner: settings.workers?.owner, logger: logger)
    services.append(dashboard)
    logger.info("serve starting", metadata: [
        "write": "\(database.writeURL)", "read": "\(database.readURL)", "workers": "\(settings.workers != nil)",
        "concurrency": "\(settings.workers?.concurrency ?? 0)", "read_fallback": "\(settings.readFallback)",
        "gateway": "\(settings.gatewayURL ?? "in-process simulation")",
    ])
    let (host, port) = (settings.host, settings.port)
    return Application(
        router: buildRouter(api: api, registry: registry, dashboard: dashboard),
        configuration: .init(address: .hostname(host, port: port), serverName: "payments"),
        services: services,
        onServerRunning: { _ in logger.info("HTTP API listening", metadata: ["address": "http://\(host):\(port)"]) },
        logger: logger)
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
