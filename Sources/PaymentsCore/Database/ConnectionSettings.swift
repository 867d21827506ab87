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
