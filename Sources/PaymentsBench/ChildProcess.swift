import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A process the bench starts (a serve, a gateway, pgbench, wrk) and stops by its PID.
///
/// Spawned with posix_spawn and a clean signal mask and default signal actions: this
/// process's threads block most signals (the concurrency runtime, NIO), and a child that
/// inherits the mask never sees SIGALRM (pgbench -T ran for ever) nor SIGTERM.
final class ChildProcess: @unchecked Sendable {
    let name: String
    let logPath: String
    let pid: pid_t
    private let status = Mutex<Int32?>(nil)

    /// Starts `executable` with `arguments`, its output appended to `logPath`.
    init(_ name: String, executable: String, arguments: [String], environment: [String: String] = [:], logPath: String) throws {
        self.name = name
        self.logPath = logPath
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let env = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0.key)=\($0.value)" }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup($0) } + [nil]
        defer { for p in argv + envp { free(p) } }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw BenchError.commandFailed("cannot start \(executable): \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// Whether it still runs (reaps it once it ended).
    var isRunning: Bool {
        status.withLock { s in
            guard s == nil else { return false }
            var raw: Int32 = 0
            guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
            // Exit status, or 128 + the signal that ended it.
            s = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
            return false
        }
    }

    var terminationStatus: Int32 { status.withLock { $0 } ?? -1 }

    /// Resident memory now (MB), from /proc.
    var residentMegabytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return 0 }
        return kb / 1024
    }

    /// SIGTERM, then SIGKILL after `grace`; returns the exit status.
    @discardableResult
    func stop(grace: Duration = .seconds(30)) async -> Int32 {
        if isRunning { kill(pid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        while isRunning && ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(50)) }
        if isRunning {
            kill(pid, SIGKILL)
            while isRunning { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return terminationStatus
    }

    /// Runs a command to its end; its standard output, or an error naming it and its status.
    static func output(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
) async throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("payments-bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path
        let child = try ChildProcess(URL(fileURLWithPath: executable).lastPathComponent, executable: executable, arguments: arguments,
                                     environment: environment, logPath: out)
        while child.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        let text = (try? String(contentsOfFile: out, encoding: .utf8)) ?? ""
        guard child.terminationStatus == 0 else {
            throw BenchError.commandFailed("\(executable) \(arguments.joined(separator: " ")) exited \(child.terminationStatus): \(text.suffix(400))")
        }
        return text
    }

    /// The first of `names` found on PATH or in PostgreSQL's bin folder.
    static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        let dirs = path.split(separator: ":").map(String.init) + ["/usr/lib/postgresql/15/bin"]
        return dirs.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

public enum BenchError: Error, CustomStringConvertible {
    case commandFailed(String)
    case missingTool(String)
    case notReady(String)
    case database(String)

    public var description: String {
        switch self {
        case let .commandFailed(text): text
        case let .missingTool(name): "\(name) is not installed (make test installs it: scripts/install-deps)"
        case let .notReady(what): what
        case let .database(text): text
        }
    }
}
