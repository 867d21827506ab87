import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PaymentsCore
import Testing

/// A real `payments serve` process, started from the built binary.
final class ServeProcess: @unchecked Sendable {
    let pid: pid_t
    let port: Int
    let logURL: URL
    let journal: String
    private var exitStatus: Int32?

    /// - Parameter journal: the simulated gateway's journal; share it between processes
    ///   that stand for the same gateway.
    init(arguments: [String], port: Int, journal: String, environment extra: [String: String] = [:]) throws {
        self.port = port
        self.journal = journal
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("serve-\(port)-\(UUID().uuidString).log")
        var env = TestEnvironment.environment
        env["WRITE_DSN"] = TestEnvironment.writeDSN
        env["READ_DSN"] = TestEnvironment.readDSN
        for (k, v) in extra { env[k] = v }
        pid = try Subprocess.spawn(TestEnvironment.binary.path,
            ["serve", "--port", "\(port)", "--gateway-journal", journal, "--stats-interval", "1"] + arguments,
            environment: env, stdout: logURL.path, stderr: logURL.path)
    }

    deinit {
        if isRunning { kill(pid, SIGKILL); var s: Int32 = 0; waitpid(pid, &s, 0) }
        try? FileManager.default.removeItem(at: logURL)
    }

    /// Reaps the child if it has exited.
    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let rc = waitpid(pid, &status, WNOHANG)
        if rc == pid { exitStatus = Subprocess.exitCode(status); return false }
        return rc == 0
    }

    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    func waitUntilHealthy(timeout: Duration = .seconds(20)) async throws {
        try await TestEnvironment.eventually("serve on port \(port) answers /healthz", timeout: timeout) {
            guard self.isRunning else { return false }
            return (try? await HTTP.request("GET", "http://127.0.0.1:\(self.port)/healthz"))?.status == 200
        }
    }

    /// Resident memory in MB, from /proc.
    var residentMB: Double {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for the process to exit and returns its status.
    func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline {
                Issue.record("serve (pid \(pid)) did not exit within \(timeout); log:\n\(log.suffix(3000))")
                kill(pid, SIGKILL)
                throw TimeoutError()
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        return exitStatus ?? -1
    }

    static func journalPath() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gateway-\(UUID().uuidString).jsonl").path
    }
}

enum HTTP {
    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] }
        func header(_ name: String) -> String? {
            headers.first { $0.key.lowercased() == name.lowercased() }?.value
        }
    }

    static let session: URLSession = {
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = 30
        config.httpMaximumConnectionsPerHost = 16
        return URLSession(configuration: config)
    }()

    static func request(_ method: String, _ url: String, headers: [String: String] = [:], body: Data? = nil) async throws -> Reply {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (k, v) in http.allHeaderFields { fields["\(k)"] = "\(v)" }
        return Reply(status: http.statusCode, headers: fields, body: data)
    }
}
