import Logging
import Synchronization

/// Rate-limits a repeated log line: during an outage a retry loop would otherwise write
/// the same warning many times a second. The first occurrence is logged at once, then at
/// most one per `interval`, saying how many were suppressed in between.
public final class LogThrottle: Sendable {
    private struct Entry {
        var lastLogged: ContinuousClock.Instant
        var suppressed: Int
    }
    private let entries = Mutex<[String: Entry]>([:])
    private let interval: Duration

    public init(interval: Duration = .seconds(5)) {
        self.interval = interval
    }

    /// Logs `message` unless the same message was logged less than `interval` ago.
    public func log(_ logger: Logger, _ level: Logger.Level, _ message: String, metadata: Logger.Metadata = [:],
                    now: ContinuousClock.Instant = .now) {
        let suppressed = entries.withLock { entries -> Int? in
            if var entry = entries[message], now - entry.lastLogged < interval {
                entry.suppressed += 1
                entries[message] = entry
                return nil
            }
            let count = entries[message]?.suppressed ?? 0
            entries[message] = Entry(lastLogged: now, suppressed: 0)
            return count
        }
        guard let suppressed else { return }
        var metadata = metadata
        if suppressed > 0 { metadata["suppressed_since_last"] = "\(suppressed)" }
        logger.log(level: level, "\(message)", metadata: metadata)
    }
}
