import Foundation
import Logging
import PostgresNIO

/// Applies pending migrations through pgbouncer-write, each in its own transaction
/// under a transaction-level advisory lock (session locks do not survive transaction
/// pooling), so concurrent runs serialise and each file is applied exactly once.
public struct Migrator: Sendable {
    /// Arbitrary but fixed: hashtext('payments.schema_migrations') would also do.
    static let lockKey: Int64 = 0x7061_796D_656E_7473  // "payments"

    public let client: PostgresClient
    public let logger: Logger
    /// The schema migrations are applied in (tests use throw-away schemas).
    public let schema: String

    public init(client: PostgresClient, logger: Logger, schema: String = "public") throws(PaymentsError) {
        guard schema.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw .invalidOption("schema name '\(schema)' must be lower-case letters, digits and _")
        }
        self.client = client
        self.logger = logger
        self.schema = schema
    }

    public struct Report: Sendable, Equatable {
        public var applied: [String]
        public var alreadyApplied: Int
    }

    public func migrate(_ migrations: [Migration]) async throws -> Report {
        var applied: [String] = []
        var skipped = 0
        for migration in migrations {
            let didApply = try await apply(migration)
            if didApply { applied.append(migration.name) } else { skipped += 1 }
        }
        return Report(applied: applied, alreadyApplied: skipped)
    }

    /// Returns false if the migration had already been applied (by anyone).
    func apply(_ migration: Migration) async throws -> Bool {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                // SET LOCAL lasts only for this transaction: safe through transaction pooling.
                try await connection.query(PostgresQuery(unsafeSQL: "SET LOCAL search_path TO \"\(schema)\""), logger: logger)
                // A migration may rewrite a large table: not bound by the role's statement timeout.
                try await connection.query("SET LOCAL statement_timeout = 0", logger: logger)
                try await connection.query("""
                    CREATE TABLE IF NOT EXISTS schema_migrations (
                        version    text PRIMARY KEY,
                        name       text NOT NULL,
                        checksum   text NOT NULL,
                        applied_at timestamptz NOT NULL DEFAULT now())
                    """, logger: logger)
                let rows = try await connection.query(
                    "SELECT checksum FROM schema_migrations WHERE version = \(migration.version)", logger: logger)
                for try await (checksum) in rows.decode(String.self) {
                    guard checksum == migration.checksum else { throw PaymentsError.migrationModified(file: migration.name) }
                    return false
                }
                for statement in SQLSplitter.split(migration.sql) {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("""
                    INSERT INTO schema_migrations (version, name, checksum)
                    VALUES (\(migration.version), \(migration.name), \(migration.checksum))
                    """, logger: logger)
                logger.info("migration applied", metadata: ["migration": "\(migration.name)"])
                return true
            }
        } catch {
            if let error = rootCause(error) as? PaymentsError { throw error }
            throw PaymentsError.migrationFailed(file: migration.name, reason: describe(error))
        }
    }

    /// Versions recorded as applied, in order.
    public func appliedVersions() async throws -> [String] {
        let exists = try await client.query("SELECT to_regclass(\(schema + ".schema_migrations")) IS NOT NULL", logger: logger)
        for try await (present) in exists.decode(Bool.self) where !present { return [] }
        var versions: [String] = []
        for try await (version) in try await client.query(PostgresQuery(unsafeSQL: "SELECT version FROM \"\(schema)\".schema_migrations ORDER BY version"), logger: logger).decode(String.self) {
            versions.append(version)
        }
        return versions
    }
}
