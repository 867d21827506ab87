import ArgumentParser
import Foundation
import Logging
import PaymentsCore

@main
struct Payments: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "payments",
        abstract: "Payment jobs on PostgreSQL behind PgBouncer: enqueue, process, observe.",
        subcommands: [MigrateCommand.self, EnqueueCommand.self, ServeCommand.self, GatewayCommand.self, StatusCommand.self, WatchCommand.self, PruneCommand.self, CancelCommand.self, ResolveCommand.self, ReconcileCommand.self, BenchCommand.self])
}

/// Flags shared by every command that talks to the database.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("write-dsn"), help: "pgbouncer-write DSN (env WRITE_DSN; default: local topology, port 6432).")
    var writeDSN: String?

    @Option(name: .customLong("read-dsn"), help: "pgbouncer-read DSN (env READ_DSN; default: local topology, port 6433).")
    var readDSN: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String = "info"

    /// A malformed DSN (flag or environment) or log level is a usage error: exit 64.
    func validate() throws {
        _ = try usageChecked { try urls() }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(logLevel)'")
        }
    }

    func urls() throws -> (write: DatabaseURL, read: DatabaseURL) {
        let env = ProcessInfo.processInfo.environment
        return (
            try ConnectionSettings.resolve(flag: writeDSN, environmentKey: "WRITE_DSN", environment: env, fallback: ConnectionSettings.defaultWriteDSN),
            try ConnectionSettings.resolve(flag: readDSN, environmentKey: "READ_DSN", environment: env, fallback: ConnectionSettings.defaultReadDSN)
        )
    }

    func makeLogger(_ label: String) throws -> Logger {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw PaymentsError.invalidOption("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")), got '\(logLevel)'")
        }
        LoggingBootstrap.once(level: level)
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }

    func makeDatabase(logger: Logger, writePool: Int = 8, readPool: Int = 8) throws -> Database {
        let (write, read) = try urls()
        return Database(writeURL: write, readURL: read, writePoolSize: writePool, readPoolSize: readPool, logger: logger)
    }
}

enum LoggingBootstrap {
    nonisolated(unsafe) private static var done = false
    static func once(level: Logger.Level) {
        guard !done else { return }
        done = true
        LoggingSystem.bootstrap { label in
            var handler = LazyStreamLogHandler(standardErrorLabel: label)
            handler.logLevel = level
            return handler
        }
    }
}

/// Runs a command body, turning any failure into one clear line on stderr and an exit
/// code: 64 (EX_USAGE) for a bad flag or DSN, as ArgumentParser's own checks give, and 1
/// for everything that went wrong at run time.
func runReportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        FileHandle.standardError.write(Data("error: \(describe(error))\n".utf8))
        if let error = rootCause(error) as? PaymentsError, error.isUsageError { throw ExitCode.validationFailure }
        throw ExitCode.failure
    }
}

/// For `validate()`: a PaymentsError usage error becomes ArgumentParser's ValidationError
/// (message, usage line, exit 64).
func usageChecked<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as PaymentsError where error.isUsageError {
        throw ValidationError(error.description)
    }
}

extension Logger {
    func with(level: Logger.Level) -> Logger {
        var copy = self
        copy.logLevel = level
        return copy
    }
}
