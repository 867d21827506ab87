/// Where the two poolers are: a flag, else the environment (`WRITE_DSN`, `READ_DSN`),
/// else the local topology's defaults.
public enum ConnectionSettings {
    public static let defaultWriteDSN = "postgres://db_user:db_password@127.0.0.1:6432/resilient_payment_processor?sslmode=disable"
    public static let defaultReadDSN = "postgres://db_user:db_password@127.0.0.1:6433/resilient_payment_processor?sslmode=disable"
    /// The local topology's primary itself, no pooler (`scripts/topology env`: PRIMARY_DSN).
    public static let defaultPrimaryDSN = "postgres://db_user:db_password@127.0.0.1:5432/resilient_payment_processor?sslmode=disable"

    /// Where `serve`'s claimer listens for new payments: the flag, else PRIMARY_DSN, else
    /// the local topology's primary when the write path is the local topology's default
    /// pooler (nil for any other database: a primary elsewhere is not guessed). "none":
    /// polling alone.
    public static func primary(flag: String?, environment: [String: String], write: DatabaseURL) throws(PaymentsError) -> DatabaseURL? {
        let given = flag ?? environment["PRIMARY_DSN"].flatMap { $0.isEmpty ? nil : $0 }
        if let given { return given == "none" ? nil : try DatabaseURL(parsing: given) }
        guard let localWrite = try? DatabaseURL(parsing: defaultWriteDSN), write == localWrite else { return nil }
        return try DatabaseURL(parsing: defaultPrimaryDSN)
    }

    /// What the dashboard reads besides the database on the local topology at its default
    /// ports, as `scripts/topology env` exports it: HAProxy's stats page and the poolers'
    /// stats user (compose/configs/pgbouncer/userlist.txt).
    public struct Observability: Sendable, Equatable {
        public var haproxyStatsURL: String
        public var poolerStatsUser: String
        public var poolerStatsPassword: String
    }

    public static let localObservability = Observability(
        haproxyStatsURL: "http://127.0.0.1:8404/;csv", poolerStatsUser: "pgbouncer_stats", poolerStatsPassword: "stats_password")

    /// The local topology's observability for a serve that reaches the local topology's
    /// default poolers (a bare `payments serve`, as the demo's); nil for any other
    /// database, whose HAProxy and poolers may be anywhere.
    public static func observabilityDefaults(write: DatabaseURL, read: DatabaseURL) -> Observability? {
        guard let localWrite = try? DatabaseURL(parsing: defaultWriteDSN), let localRead = try? DatabaseURL(parsing: defaultReadDSN),
              write == localWrite, read == localRead else { return nil }
        return localObservability
    }

    public static func resolve(flag: String?, environmentKey: String, environment: [String: String], fallback: String) throws(PaymentsError) -> DatabaseURL {
        if let flag { return try DatabaseURL(parsing: flag) }
        if let value = environment[environmentKey], !value.isEmpty { return try DatabaseURL(parsing: value) }
        return try DatabaseURL(parsing: fallback)
    }
}
