import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import PaymentsCore
import ServiceLifecycle
import Synchronization

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

/// The simulated payment service provider as its own HTTP/1.1 server, on SwiftNIO directly.
///
/// It stands in for a provider that answers in microseconds, so its own cost per charge is
/// the benchmark's business: under Hummingbird (an async task and an async-sequence hop per
/// request, one request at a time per connection) it spent ~58 µs of CPU per charge
/// (2026-12-06, more than the serve that called it), on a machine whose two cores PostgreSQL
/// needs. Here a request is a callback on its connection's event loop, and the requests a
/// client pipelines are processed together (GatewayConnectionHandler).
public final class GatewayServer: Service, Sendable {
    public let settings: GatewaySettings
    private let routes: GatewayRoutes
    private let logger: Logger
    private let group: any EventLoopGroup
    private let state = Mutex(Channels())

    struct Channels {
        var listener: (any Channel)?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }

    public init(_ settings: GatewaySettings, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.settings = try settings.validated()
        let store = try ChargeStore(path: self.settings.journalPath)
        self.routes = GatewayRoutes(store: store, faults: self.settings.faults, counters: GatewayCounters())
        self.logger = logger
        self.group = group
        logger.info("gateway starting", metadata: [
            "journal": "\(settings.journalPath)", "charges_on_record": "\(store.chargeCount)", "seed": "\(settings.faults.seed)",
            "faults": "\(settings.faults)",
        ])
    }

    /// Binds the listener and returns its port (the one asked for, or the kernel's choice
    /// for port 0); connections are served from then until `stop`.
    @discardableResult
    public func start() async throws -> Int {
        let routes = self.routes
        let listener = try await ServerBootstrap(group: group)
            // A serve may open a connection per call in flight, thousands at once when a batch
            // is claimed: with a backlog of 256 the kernel dropped the SYNs beyond it
            // (TcpExtListenOverflows) and each of those calls waited a second for the
            // retransmission. The kernel caps it at net.core.somaxconn.
            .serverChannelOption(.backlog, value: 4_096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try channel.pipeline.syncOperations.addHandler(GatewayConnectionHandler(routes: routes))
                    track(channel)
                }
            }
            .bind(host: settings.host, port: settings.port)
            .get()
        let accepted = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.listener = listener
            return true
        }
        guard accepted else {
            try? await listener.close()
            throw CancellationError()
        }
        let port = listener.localAddress?.port ?? settings.port
        logger.info("gateway listening", metadata: ["address": "http://\(settings.host):\(port)"])
        return port
    }

    private func track(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let open = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.connections[id] = channel
            return true
        }
        guard open else { return channel.close(promise: nil) }
        channel.closeFuture.whenComplete { [self] _ in _ = state.withLock { $0.connections.removeValue(forKey: id) } }
    }

    /// Stops listening, closes every connection and releases the journal once the group
    /// commit in progress is on disk. A charge still being processed is lost with its
    /// answer, as on any provider's restart: its caller asks again under the same key.
    public func stop() async {
        let (listener, connections) = state.withLock { s in
            s.stopped = true
            return (s.listener, Array(s.connections.values))
        }
        try? await listener?.close()
        for connection in connections { try? await connection.close() }
        routes.store.close()
    }

    /// `Service`: serves until a graceful shutdown (SIGTERM, SIGINT) or cancellation.
    public func run() async throws {
        try await start()
        let listener = state.withLock { $0.listener }
        await withTaskCancellationOrGracefulShutdownHandler {
            try? await listener?.closeFuture.get()
        } onCancelOrGracefulShutdown: {
            // Only the listener here: the rest is `stop()`'s, below, once, so run() returns
            // with the journal released.
            listener?.close(promise: nil)
        }
        await stop()
        logger.info("gateway stopped")
    }
}
