import Foundation
import Logging
import PaymentsCore
import PostgresNIO
import Testing

/// Every integration test runs against the real local topology. `make test` starts it on
/// PORT_OFFSET (100) and exports WRITE_DSN/READ_DSN; by hand: `scripts/topology up`.
/// A topology that cannot be reached makes the tests fail, never skip.
enum TestEnvironment {
    static let environment = ProcessInfo.processInfo.environment
    static let portOffset = Int(environment["PORT_OFFSET"] ?? "0") ?? 0
    static let logger = Logger(label: "tests")

    static func url(port: Int) -> DatabaseURL {
        DatabaseURL(user: environment["DB_USER"] ?? "db_user", password: environment["DB_PASSWORD"] ?? "db_password",
                    host: "127.0.0.1", port: port + portOffset, database: "resilient_payment_processor", sslMode: .disable)
    }

    static var writeDSN: String { environment["WRITE_DSN"] ?? url(port: 6432).description.replacingOccurrences(of: ":***", with: ":db_password") }
    static var readDSN: String { environment["READ_DSN"] ?? url(port: 6433).description.replacingOccurrences(of: ":***", with: ":db_password") }
    static var writeURL: DatabaseURL { try! DatabaseURL(parsing: writeDSN) }
    static var readURL: DatabaseURL { try! DatabaseURL(parsing: readDSN) }
    static let primaryURL = url(port: 5432)
    static var primaryDSN: String { environment["PRIMARY_DSN"] ?? primaryURL.description.replacingOccurrences(of: ":***", with: ":db_password") }
    static let replicaURLs = [url(port: 5433), url(port: 5434)]

    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static var binary: URL {
        if let path = environment["PAYMENTS_BIN"] { return URL(fileURLWithPath: path) }
        return repoRoot.appendingPathComponent(".build/debug/payments")
    }

    /// A client on `url`, running for the duration of `body`.
    static func withClient<T: Sendable>(_ url: DatabaseURL, maxConnections: Int = 4, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(configuration: url.clientConfiguration(maxConnections: maxConnections), backgroundLogger: logger)
        return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            try await Task.sleep(for: .milliseconds(10))
            return try await body(client)
        }
    }

    /// The first column of the first row, as Int.
    static func scalar(_ url: DatabaseURL, _ query: PostgresQuery) async throws -> Int {
        try await withClient(url, maxConnections: 1) { client in
            for try await (value) in try await client.query(query, logger: logger).decode(Int64.self) { return Int(value) }
            return 0
        }
    }

    struct Output: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs the `payments` binary, capturing its output in files (no pipe can fill up).
    static func run(_ arguments: [String], environment extra: [String: String] = [:], stdin: Data? = nil,
                    executable: String = binary.path) async throws -> Output {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("payments-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("stdout"), err = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        var env = environment
        env["WRITE_DSN"] = writeDSN
        env["READ_DSN"] = readDSN
        for (k, v) in extra { env[k] = v }
        var input = "/dev/null"
        if let stdin {
            input = dir.appendingPathComponent("stdin").path
            try stdin.write(to: URL(fileURLWithPath: input))
        }
        let status = try await Subprocess.run(executable, arguments, environment: env, stdin: input, stdout: out.path, stderr: err.path)
        return Output(status: status,
                      stdout: (try? String(contentsOf: out, encoding: .utf8)) ?? "",
                      stderr: (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// Runs `scripts/topology` on the tests' port offset (a fault on purpose: pause a pooler).
    static func topology(_ arguments: [String]) async throws -> Output {
        try await run(["--port-offset", "\(portOffset)"] + arguments, executable: repoRoot.appendingPathComponent("scripts/topology").path)
    }

    /// Migrates the shared schema once per test process.
    static func migrate() async throws {
        let result = try await run(["migrate"])
        try #require(result.status == 0, "payments migrate failed: \(result.stderr)")
    }

    static func uniquePrefix(_ label: String) -> String {
        "\(label)-\(UInt32.random(in: .min ... .max))"
    }

    /// Waits until `condition` holds, or fails after `timeout`.
    static func eventually(_ what: String, timeout: Duration = .seconds(15), _ condition: @Sendable () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await condition()) == true { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out after \(timeout) waiting for: \(what)")
        throw TimeoutError()
    }
}

/// All integration tests share one database and queue: they run one at a time.
@Suite(.serialized) struct Integration {}
