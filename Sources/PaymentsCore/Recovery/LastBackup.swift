import Foundation

/// The newest backup in a pgBackRest repository on a path this process can read (the
/// local topology's `STATE/backups`, or a mounted repository): what `payments status` and
/// the dashboard say about backups. The database cannot tell; the repository's
/// `backup.info` can (an INI file whose `[backup:current]` values are JSON).
public struct LastBackup: Sendable, Equatable {
    public var label: String
    public var type: String
    public var stoppedAt: Date
    public var repositoryBytes: Int64

    public init(label: String, type: String, stoppedAt: Date, repositoryBytes: Int64) {
        self.label = label
        self.type = type
        self.stoppedAt = stoppedAt
        self.repositoryBytes = repositoryBytes
    }

    /// One line for `payments status` and the dashboard.
    public func summary(now: Date = Date()) -> String {
        let age = max(0, now.timeIntervalSince(stoppedAt))
        let ago = age < 120 ? "\(Int(age)) s" : age < 7_200 ? "\(Int(age / 60)) min" : String(format: "%.1f h", age / 3_600)
        return "\(type) \(label), \(ago) ago, \(repositoryBytes / 1_000_000) MB in the repository"
    }

    public enum ReadError: Error, CustomStringConvertible {
        case unreadable(path: String)
        public var description: String {
            switch self {
            case let .unreadable(path): "cannot read \(path): no stanza there, or no permission"
            }
        }
    }

    /// Nil when the repository has no backup yet.
    public static func read(repository: String, stanza: String = "payments") throws(ReadError) -> LastBackup? {
        let path = "\(repository)/backup/\(stanza)/backup.info"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path: path) }
        return parse(backupInfo: text)
    }

    /// The newest completed backup of a `backup.info` text.
    public static func parse(backupInfo text: String) -> LastBackup? {
        var inCurrent = false
        var newest: LastBackup?
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if line.hasPrefix("[") { inCurrent = line == "[backup:current]"; continue }
            guard inCurrent, let eq = line.firstIndex(of: "=") else { continue }
            let label = String(line[..<eq])
            guard let object = try? JSONSerialization.jsonObject(with: Data(line[line.index(after: eq)...].utf8)) as? [String: Any],
                  let stop = (object["backup-timestamp-stop"] as? NSNumber)?.doubleValue,
                  (object["backup-error"] as? Bool) != true else { continue }
            let backup = LastBackup(label: label, type: object["backup-type"] as? String ?? "?",
                                    stoppedAt: Date(timeIntervalSince1970: stop),
                                    repositoryBytes: (object["backup-info-repo-size-delta"] as? NSNumber)?.int64Value ?? 0)
            if newest.map({ backup.stoppedAt > $0.stoppedAt }) ?? true { newest = backup }
        }
        return newest
    }
}
