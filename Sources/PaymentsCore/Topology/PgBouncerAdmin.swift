import NIOCore
import NIOPosix

/// One pooler's admin console, asked `SHOW POOLS` by the dashboard with its own
/// credentials (a `stats_users` entry: it can look, not act). One short connection per
/// question: the dashboard asks once a second, and a connection kept open would need its
/// own reconnect logic for every pooler restart the fault suites make.
public struct PgBouncerAdmin: Sendable {
    public let name: String
    public let host: String
    public let port: Int
    public let user: String?
    public let password: String?

    public init(name: String, host: String, port: Int, user: String?, password: String?) {
        self.name = name
        self.host = host
        self.port = port
        self.user = user
        self.password = password
    }

    /// The pools of the payments database (one row per database and user).
    public func showPools(timeout: Duration = .seconds(1)) async throws -> [PoolerPool] {
        let rows = try await query("SHOW POOLS", timeout: timeout)
        return rows.compactMap(PoolerPool.init(row:)).filter { $0.database != "pgbouncer" }
    }

    /// Rows of one admin command, each a column name → text value map.
    func query(_ sql: String, timeout: Duration) async throws -> [[String: String]] {
        guard let user, let password, !user.isEmpty else { throw PgBouncerAdminError.noCredentials(pooler: name) }
        let (host, port, name) = (self.host, self.port, self.name)
        return try await withTimeout(timeout) {
            let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
            do {
                channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .connectTimeout(.milliseconds(Int64(timeout.seconds * 1000)))
                    .connect(host: host, port: port) { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                        }
                    }
            } catch {
                throw PgBouncerAdminError.unreachable(pooler: name, reason: describe(error))
            }
            return try await channel.executeThenClose { inbound, outbound in
                var session = AdminSession(pooler: name, inbound: inbound.makeAsyncIterator())
                try await outbound.write(PgWire.startup(user: user, database: "pgbouncer"))
                try await session.authenticate(password: password, outbound: outbound)
                try await outbound.write(PgWire.query(sql))
                let rows = try await session.rows()
                try? await outbound.write(PgWire.terminate)
                return rows
            }
        }
    }
}

/// Reads one admin conversation's messages in order.
private struct AdminSession {
    let pooler: String
    var inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    var buffer = ByteBuffer()
    var pending: [PgWire.Message] = []

    init(pooler: String, inbound: NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator) {
        self.pooler = pooler
        self.inbound = inbound
    }

    mutating func next() async throws -> PgWire.Message {
        while pending.isEmpty {
            guard var more = try await inbound.next() else {
                throw PgBouncerAdminError.unreachable(pooler: pooler, reason: "the connection closed mid-conversation")
            }
            buffer.writeBuffer(&more)
            pending = try PgWire.messages(from: &buffer)
        }
        return pending.removeFirst()
    }

    /// Up to the first ReadyForQuery. Only a cleartext password is answered: SCRAM needs
    /// SHA-256/HMAC/PBKDF2, and the package has no crypto library (docs/dashboard.md).
    mutating func authenticate(password: String, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws {
        while true {
            let message = try await next()
            switch message.type {
            case UInt8(ascii: "R"):
                var body = message.body
                let method: Int32 = body.readInteger() ?? -1
                switch method {
                case 0: continue
                case 3: try await outbound.write(PgWire.password(password))
                default:
                    throw PgBouncerAdminError.unsupportedAuthentication(pooler: pooler, method: AuthenticationMethod.name(method))
                }
            case UInt8(ascii: "E"):
                let (text, code) = PgWire.error(message.body)
                throw PgBouncerAdminError.refused(pooler: pooler, message: text, code: code)
            case UInt8(ascii: "Z"):
                return
            default:
                continue  // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    mutating func rows() async throws -> [[String: String]] {
        var columns: [String] = []
        var rows: [[String: String]] = []
        var failure: PgBouncerAdminError?
        while true {
            let message = try await next()
            switch message.type {
            case UInt8(ascii: "T"): columns = try PgWire.columnNames(message.body)
            case UInt8(ascii: "D"):
                let values = try PgWire.values(message.body)
                var row: [String: String] = [:]
                for (column, value) in zip(columns, values) { row[column] = value }
                rows.append(row)
            case UInt8(ascii: "E"):
                let (text, code) = PgWire.error(message.body)
                failure = .refused(pooler: pooler, message: text, code: code)
            case UInt8(ascii: "Z"):
                if let failure { throw failure }
                return rows
            default: continue
            }
        }
    }
}

enum AuthenticationMethod {
    static func name(_ code: Int32) -> String {
        switch code {
        case 3: "cleartext password"
        case 5: "md5"
        case 10: "SASL (SCRAM-SHA-256)"
        default: "method \(code)"
        }
    }
}

/// One row of `SHOW POOLS`, the columns the dashboard shows.
public struct PoolerPool: Sendable, Codable, Equatable {
    public var database, user: String
    public var clientsActive, clientsWaiting, serversActive, serversIdle, serversUsed, serversLogin: Int
    public var maxWaitSeconds: Double

    enum CodingKeys: String, CodingKey {
        case database, user
        case clientsActive = "cl_active", clientsWaiting = "cl_waiting", serversActive = "sv_active"
        case serversIdle = "sv_idle", serversUsed = "sv_used", serversLogin = "sv_login", maxWaitSeconds = "maxwait_seconds"
    }

    public init?(row: [String: String]) {
        guard let database = row["database"], let user = row["user"] else { return nil }
        func int(_ key: String) -> Int { Int(row[key] ?? "") ?? 0 }
        self.database = database
        self.user = user
        clientsActive = int("cl_active")
        clientsWaiting = int("cl_waiting")
        serversActive = int("sv_active")
        serversIdle = int("sv_idle")
        serversUsed = int("sv_used")
        serversLogin = int("sv_login")
        maxWaitSeconds = Double(int("maxwait")) + Double(int("maxwait_us")) / 1_000_000
    }
}

public enum PgBouncerAdminError: Error, Equatable, CustomStringConvertible {
    case noCredentials(pooler: String)
    case unreachable(pooler: String, reason: String)
    case unsupportedAuthentication(pooler: String, method: String)
    case refused(pooler: String, message: String, code: String)

    public var description: String {
        switch self {
        case let .noCredentials(pooler):
            "no admin credential for \(pooler): set PGBOUNCER_STATS_USER and PGBOUNCER_STATS_PASSWORD (a stats_users entry)"
        case let .unreachable(pooler, reason):
            "\(pooler)'s admin console cannot be reached: \(reason)"
        case let .unsupportedAuthentication(pooler, method):
            "\(pooler) asks the stats user for \(method); the dashboard answers only a cleartext password (auth_hba_file: 'host pgbouncer <user> 127.0.0.1/32 password')"
        case let .refused(pooler, message, code):
            "\(pooler) refused: \(message)\(code.isEmpty ? "" : " (SQLSTATE \(code))")"
        }
    }
}
