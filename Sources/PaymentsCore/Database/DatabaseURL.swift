import Foundation
import PostgresNIO

/// A parsed connection string. Accepts the seed's short form
/// `user:password@host:port/database?sslmode=disable` and `postgres://` / `postgresql://` URLs.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible {
    public enum SSLMode: String, Sendable, Equatable, CaseIterable {
        case disable, prefer, require
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var sslMode: SSLMode

    public init(user: String, password: String?, host: String, port: Int, database: String, sslMode: SSLMode = .disable) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.sslMode = sslMode
    }

    public init(parsing raw: String) throws(PaymentsError) {
        let text = raw.trimmingCharacters(in: .whitespaces)
        func fail(_ reason: String) -> PaymentsError { .invalidDSN(raw, reason: reason) }
        guard !text.isEmpty else { throw fail("it is empty") }

        var rest = Substring(text)
        if let range = rest.range(of: "://") {
            let scheme = rest[..<range.lowerBound].lowercased()
            guard scheme == "postgres" || scheme == "postgresql" else {
                throw fail("unsupported scheme '\(scheme)' (use postgres://)")
            }
            rest = rest[range.upperBound...]
        }

        var query = Substring("")
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        guard let at = rest.lastIndex(of: "@") else { throw fail("no user@ part") }
        let userInfo = rest[..<at]
        var hostPart = rest[rest.index(after: at)...]

        let userRaw: Substring
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            userRaw = userInfo[..<colon]
            guard let decoded = String(userInfo[userInfo.index(after: colon)...]).removingPercentEncoding else {
                throw fail("the password has invalid percent-encoding")
            }
            password = decoded
        } else {
            userRaw = userInfo
        }
        guard let user = String(userRaw).removingPercentEncoding, !user.isEmpty else { throw fail("the user is empty") }

        guard let slash = hostPart.firstIndex(of: "/") else { throw fail("no /database part") }
        guard let database = String(hostPart[hostPart.index(after: slash)...]).removingPercentEncoding, !database.isEmpty else {
            throw fail("the database name is empty")
        }
        hostPart = hostPart[..<slash]

        var host = String(hostPart)
        var port = 5432
        if let colon = hostPart.lastIndex(of: ":"), !hostPart.hasSuffix("]") {
            host = String(hostPart[..<colon])
            let portText = hostPart[hostPart.index(after: colon)...]
            guard let value = Int(portText), (1...65535).contains(value) else {
                throw fail("port '\(portText)' is not a number from 1 to 65535")
            }
            port = value
        }
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { throw fail("the host is empty") }

        var sslMode = SSLMode.prefer
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let kv = pair.split(separator: "=", maxSplits: 1)
            let key = String(kv[0])
            let value = kv.count > 1 ? String(kv[1]) : ""
            switch key {
            case "sslmode":
                guard let mode = SSLMode(rawValue: value) else {
                    throw fail("sslmode '\(value)' is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                sslMode = mode
            case "application_name", "connect_timeout":
                continue
            default:
                throw fail("unknown parameter '\(key)'")
            }
        }
        self.init(user: user, password: password, host: host, port: port, database: database, sslMode: sslMode)
    }

    /// host:port, for messages.
    public var endpoint: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The URL with its password hidden: safe for logs.
    public var description: String {
        "postgres://\(user)\(password == nil ? "" : ":***")@\(endpoint)/\(database)?sslmode=\(sslMode.rawValue)"
    }

    /// Best-effort redaction of a raw DSN string for error messages.
    public static func redact(_ raw: String) -> String {
        guard let at = raw.lastIndex(of: "@") else { return raw }
        let head = raw[..<at]
        let schemeEnd = head.range(of: "://")?.upperBound ?? head.startIndex
        guard let colon = head[schemeEnd...].firstIndex(of: ":") else { return raw }
        return String(raw[..<colon]) + ":***" + String(raw[at...])
    }

    /// A single connection's configuration (for probes); `clientConfiguration` is the pooled one.
    public func connectionConfiguration(connectTimeout: Duration) throws -> PostgresConnection.Configuration {
        let tls: PostgresConnection.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(try .init(configuration: .makeClientConfiguration()))
        case .require: tls = .require(try .init(configuration: .makeClientConfiguration()))
        }
        var config = PostgresConnection.Configuration(host: host, port: port, username: user, password: password, database: database, tls: tls)
        config.options.connectTimeout = .init(connectTimeout)
        return config
    }

    public func clientConfiguration(maxConnections: Int, minConnections: Int = 0) -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case .disable: tls = .disable
        case .prefer: tls = .prefer(.makeClientConfiguration())
        case .require: tls = .require(.makeClientConfiguration())
        }
        var config = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: tls)
        config.options.maximumConnections = maxConnections
        config.options.minimumConnections = minConnections
        config.options.connectTimeout = .seconds(5)
        // pgbouncer closes idle server links itself; a short client idle timeout keeps
        // the client count on the pooler honest.
        config.options.connectionIdleTimeout = .seconds(30)
        return config
    }
}
