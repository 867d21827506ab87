import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// The primary's WAL archiving as PostgreSQL sees it (`pg_stat_archiver`): what a restore
/// can reach. Archiving that stopped or keeps failing is a backup that silently ages.
public struct ArchiveHealth: Sendable, Equatable {
    public var mode: String
    public var archived: Int64
    public var lastArchivedWAL: String?
    /// Seconds since the last segment was archived (nil: none yet).
    public var lastArchivedAgeSeconds: Double?
    public var failed: Int64
    public var lastFailedWAL: String?
    public var lastFailedAgeSeconds: Double?

    public init(mode: String, archived: Int64, lastArchivedWAL: String?, lastArchivedAgeSeconds: Double?,
                failed: Int64, lastFailedWAL: String?, lastFailedAgeSeconds: Double?) {
        self.mode = mode
        self.archived = archived
        self.lastArchivedWAL = lastArchivedWAL
        self.lastArchivedAgeSeconds = lastArchivedAgeSeconds
        self.failed = failed
        self.lastFailedWAL = lastFailedWAL
        self.lastFailedAgeSeconds = lastFailedAgeSeconds
    }

    /// Whether the last attempt failed (a failure newer than the last success).
    public var isFailing: Bool {
        guard let failedAge = lastFailedAgeSeconds else { return false }
        guard let archivedAge = lastArchivedAgeSeconds else { return true }
        return failedAge < archivedAge
    }

    /// One line for `payments status`.
    public var summary: String {
        guard mode != "off" else { return "off (archive_mode = off): no point-in-time recovery" }
        var line = "\(archived) segments archived, last \(lastArchivedWAL ?? "none")"
        if let age = lastArchivedAgeSeconds { line += String(format: " %.0f s ago", age) }
        line += ", \(failed) failed"
        if let wal = lastFailedWAL, let age = lastFailedAgeSeconds { line += String(format: " (last %@ %.0f s ago)", wal, age) }
        if isFailing { line += ": FAILING, the archive is falling behind" }
        return line
    }

    /// Read on the primary through pgbouncer-write (a replica's archiver is its own).
    public static let statement: PostgresQuery = """
        SELECT current_setting('archive_mode'), archived_count, last_archived_wal,
               EXTRACT(EPOCH FROM now() - last_archived_time)::float8, failed_count, last_failed_wal,
               EXTRACT(EPOCH FROM now() - last_failed_time)::float8
        FROM pg_stat_archiver
        """

    public static func read(_ client: PostgresClient, logger: Logger) async throws -> ArchiveHealth? {
        let rows = try await client.query(statement, logger: logger)
        for try await (mode, archived, wal, age, failed, failedWAL, failedAge)
            in rows.decode((String, Int64, String?, Double?, Int64, String?, Double?).self) {
            return ArchiveHealth(mode: mode, archived: archived, lastArchivedWAL: wal, lastArchivedAgeSeconds: age,
                                 failed: failed, lastFailedWAL: failedWAL, lastFailedAgeSeconds: failedAge)
        }
        return nil
    }
}

/// Puts the archiver's health in `/metrics` every `interval` (one small statement):
/// `payments_wal_archived_segments`, `payments_wal_archive_failures`,
/// `payments_wal_last_archived_age_seconds` (-1 before the first) and
/// `payments_wal_archive_failing` (1 when the last attempt failed).
public struct ArchiveMonitor: Service {
    let client: PostgresClient
    let interval: Duration
    let logger: Logger
    let archived = Gauge(label: "payments_wal_archived_segments")
    let failures = Gauge(label: "payments_wal_archive_failures")
    let age = Gauge(label: "payments_wal_last_archived_age_seconds")
    let failing = Gauge(label: "payments_wal_archive_failing")

    public init(client: PostgresClient, every interval: Duration = .seconds(15), logger: Logger) {
        self.client = client
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.watch() }
    }

    func watch() async {
        var warnedFailing = false
        while !Task.isCancelled {
            do {
                if let health = try await withTimeout(.seconds(5), { [client, logger] in try await ArchiveHealth.read(client, logger: logger) }) {
                    archived.record(health.archived)
                    failures.record(health.failed)
                    age.record(health.lastArchivedAgeSeconds ?? -1)
                    failing.record(health.isFailing ? 1 : 0)
                    if health.isFailing && !warnedFailing {
                        logger.warning("WAL archiving is failing: the backups' recovery point is falling behind", metadata: ["archiver": "\(health.summary)"])
                    }
                    warnedFailing = health.isFailing
                }
            } catch {
                logger.debug("reading pg_stat_archiver failed", metadata: ["error": "\(describe(error))"])
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }
}
