import Logging

/// StreamLogHandler's lines, with the metadata formatted when a line is written instead of
/// whenever it is set. StreamLogHandler sorts and formats all of its metadata on every set,
/// and Hummingbird sets a request id on a copy of the logger for every request it serves:
/// perf of `GET /v1/payments/{id}` (2026-12-06) had that at about 5% of the serve's CPU,
/// for lines that are almost never written.
public struct LazyStreamLogHandler: LogHandler {
    /// Writes the lines; its own metadata stays empty until a line is written.
    private var stream: StreamLogHandler
    public var metadata: Logger.Metadata = [:]

    public init(standardErrorLabel label: String) {
        stream = StreamLogHandler.standardError(label: label)
    }

    public var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = stream
        line.metadata = metadata
        line.log(event: event)
    }
}
