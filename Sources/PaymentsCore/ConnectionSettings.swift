import Logging
import PostgresNIO
import Synchronization

/// Where the two poolers are: a flag, else the environment (`WRITE_DSN`, `READ_DSN`),
/// else the local topology's defaults.
public enum ConnectionSettings {
    public static let defaultWriteDSN = "postgres://db_user:db_password@127.0.0.1:6432/resilient_payment_processor?sslmode=disable"
    public static let defaultReadDSN = "postgres://db_user:db_password@127.0.0.1:6433/resilient_payment_processor?sslmode=disable"

    public static func resolve(flag: String?, environmentKey: String, environment: [String: String], fallback: String) throws(PaymentsError) -> DatabaseURL {
        if let flag { return try DatabaseURL(parsing: flag) }
        if let value = environment[environmentKey], !value.isEmpty { return try DatabaseURL(parsing: value) }
        return try DatabaseURL(parsing: fallback)
    }
}

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
