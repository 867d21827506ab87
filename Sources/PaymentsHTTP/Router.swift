import Hummingbird
import PaymentsCore
import Prometheus

/// Every route of the API over `api`, with JSON errors everywhere (unknown routes too);
/// the dashboard's page and stream when a collector is given.
public func buildRouter<API: PaymentsAPI>(api: API, registry: PrometheusCollectorRegistry,
                                          dashboard: DashboardCollector? = nil) -> Router<BasicRequestContext> {
    // HEAD answers every GET route with its headers and no body.
    let router = Router(context: BasicRequestContext.self, options: .autoGenerateHeadEndpoints)
    router.add(middleware: JSONErrorMiddleware())
    PaymentRoutes(api: api).register(on: router)
    OperationsRoutes(api: api, registry: registry).register(on: router)
    if let dashboard { DashboardRoutes(collector: dashboard).register(on: router) }
    return router
}
