import PostgresNIO
import ServiceLifecycle

/// A connection pool as a service of `serve`'s ServiceGroup: it closes on graceful
/// shutdown, and the process never waits more than `shutdownGrace` for it
/// (see `Database.runPool`).
public struct PoolService: Service {
    public let client: PostgresClient
    public var shutdownGrace: Duration

    public init(_ client: PostgresClient, shutdownGrace: Duration = .seconds(2)) {
        self.client = client
        self.shutdownGrace = shutdownGrace
    }

    public func run() async throws {
        let (client, grace) = (client, shutdownGrace)
        await cancelWhenGracefulShutdown {
            await Database.runPool(client, shutdownGrace: grace)
        }
    }
}
