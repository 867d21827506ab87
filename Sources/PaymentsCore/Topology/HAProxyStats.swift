import Foundation

/// One server line of HAProxy's stats CSV (`GET <stats uri>;csv`): what the dashboard
/// shows of each backend.
public struct HAProxyServer: Sendable, Codable, Equatable {
    public var backend: String
    public var server: String
    /// UP, DOWN, "UP 1/2" (going down), "DOWN 1/2" (coming up), MAINT, no check.
    public var status: String
    public var sessions: Int
    public var lastChangeSeconds: Int?
    /// The last check's result, e.g. L7OK, L4CON, L7STS.
    public var check: String

    enum CodingKeys: String, CodingKey {
        case backend, server, status, sessions, check
        case lastChangeSeconds = "last_change_seconds"
    }

    public var isUp: Bool { status.hasPrefix("UP") }

    /// The servers in `csv`, without the FRONTEND/BACKEND summary lines. Columns are found
    /// by the header's names, which HAProxy keeps while adding new ones at the end.
    public static func parse(csv: String) throws -> [HAProxyServer] {
        var lines = csv.split(whereSeparator: \.isNewline).map(String.init)
        guard let header = lines.first, header.hasPrefix("# ") else {
            throw HAProxyStatsError.notCSV(String(csv.prefix(80)))
        }
        lines.removeFirst()
        let names = header.dropFirst(2).split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        func index(_ name: String) throws -> Int {
            guard let i = names.firstIndex(of: name) else { throw HAProxyStatsError.missingColumn(name) }
            return i
        }
        let (px, sv, status, scur, lastchg, check) = try (index("pxname"), index("svname"), index("status"), index("scur"),
                                                          index("lastchg"), index("check_status"))
        return lines.compactMap { line in
            let fields = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard fields.count > max(px, sv, status, scur, lastchg, check) else { return nil }
            guard fields[sv] != "FRONTEND", fields[sv] != "BACKEND" else { return nil }
            return HAProxyServer(backend: fields[px], server: fields[sv], status: fields[status],
                                 sessions: Int(fields[scur]) ?? 0, lastChangeSeconds: Int(fields[lastchg]),
                                 check: fields[check].replacingOccurrences(of: "* ", with: ""))
        }
    }
}

public enum HAProxyStatsError: Error, Equatable, CustomStringConvertible {
    case notCSV(String)
    case missingColumn(String)

    public var description: String {
        switch self {
        case let .notCSV(start): "HAProxy's stats did not answer CSV (began with \"\(start)\"): is the URL the stats uri with ;csv?"
        case let .missingColumn(name): "HAProxy's stats CSV has no column \(name)"
        }
    }
}
