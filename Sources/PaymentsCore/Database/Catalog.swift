import Logging
import PostgresNIO
import Synchronization

/// Small read-only lookups shared by the CLI and the server.
public enum Catalog {
    /// The ISO 4217 codes the schema accepts (the `currencies` table is the one source).
    public static func currencies(_ client: PostgresClient, logger: Logger) async throws -> Set<String> {
        var codes = Set<String>()
        for try await (code) in try await client.query("SELECT code::text FROM currencies", logger: logger).decode(String.self) {
            codes.insert(code)
        }
        return codes
    }
}

/// The supported currencies, read once from the database (and again after a failure).
public final class CurrencyCache: Sendable {
    private let cached = Mutex<Set<String>?>(nil)
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func get() async throws -> Set<String> {
        if let value = cached.withLock({ $0 }) { return value }
        let value = try await Catalog.currencies(client, logger: logger)
        cached.withLock { $0 = value }
        return value
    }
}
