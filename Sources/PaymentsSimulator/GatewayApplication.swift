import Hummingbird
import Logging
import PaymentsCore
import PaymentsHTTP

/// What `payments gateway` is told: where it listens, where it keeps its charges, which
/// faults it injects.
public struct GatewaySettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8090
    /// The durable deduplication store: every accepted charge, one JSON line each.
    public var journalPath: String
    public var faults = GatewayFaults()

    public init(journalPath: String) {
        self.journalPath = journalPath
    }

    public func validated() throws(PaymentsError) -> Self {
        // 0: any free port (tests).
        guard (0...65535).contains(port) else { throw .invalidOption("--port must be from 0 to 65535, got \(port)") }
        guard !journalPath.isEmpty else { throw .invalidOption("--journal must name a file") }
        var copy = self
        copy.faults = try faults.validated()
        return copy
    }
}

/// The simulated payment service provider as its own HTTP server.
public func buildGatewayApplication(_ settings: GatewaySettings, logger: Logger) throws -> some ApplicationProtocol {
    let settings = try settings.validated()
    let store = try ChargeStore(path: settings.journalPath)
    let router = Router(context: BasicRequestContext.self)
    router.add(middleware: JSONErrorMiddleware())
    GatewayRoutes(store: store, faults: settings.faults, counters: GatewayCounters()).register(on: router)
    let (host, port) = (settings.host, settings.port)
    logger.info("gateway starting", metadata: [
        "journal": "\(settings.journalPath)", "charges_on_record": "\(store.chargeCount)", "seed": "\(settings.faults.seed)",
        "faults": "\(settings.faults)",
    ])
    return Application(
        router: router,
        // A serve opens a connection per call in flight (up to thousands at once when a
        // batch is claimed): with Hummingbird's default backlog of 256 the kernel dropped
        // the SYNs beyond it (TcpExtListenOverflows) and those calls waited a whole second
        // for the retransmission (the demo's gateway stage p99 was 1.26 s for a 50 ms
        // gateway). The kernel caps it at net.core.somaxconn.
        configuration: .init(address: .hostname(host, port: port), serverName: "payments-gateway", backlog: 4_096),
        onServerRunning: { _ in logger.info("gateway listening", metadata: ["address": "http://\(host):\(port)"]) },
        logger: logger)
}
