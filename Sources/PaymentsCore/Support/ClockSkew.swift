import Foundation

/// How far another clock is from this process's, measured the NTP way: the remote time
/// read between two local readings, the offset taken against their midpoint, the
/// uncertainty half the round trip. Deadlines are set on a worker's clock and checked on
/// the gateway's, and `run_at`/`charge_deadline_at` are the database's: every pair must
/// agree within `margin` (WorkerConfiguration's settle margin) or a "no charge" may be
/// trusted too early.
public struct ClockReading: Sendable, Equatable, Codable {
    public var name: String
    /// The other clock minus this one, in seconds.
    public var offsetSeconds: Double
    public var uncertaintySeconds: Double

    public init(name: String, offsetSeconds: Double, uncertaintySeconds: Double) {
        self.name = name
        self.offsetSeconds = offsetSeconds
        self.uncertaintySeconds = uncertaintySeconds
    }

    enum CodingKeys: String, CodingKey {
        case name, offsetSeconds = "offset_seconds", uncertaintySeconds = "uncertainty_seconds"
    }
}

public enum ClockSkew {
    /// The margin the deadlines assume between any two clocks (serves, gateway, database
    /// nodes): the workers' settle margin.
    public static let margin: Double = WorkerConfiguration().settleMargin.seconds

    /// Reads `remote` (a clock read at the other end) and returns its offset from this clock.
    public static func measure(_ name: String, _ remote: () async throws -> Date) async throws -> ClockReading {
        let before = Date()
        let theirs = try await remote()
        let after = Date()
        let midpoint = before.timeIntervalSince1970 + after.timeIntervalSince(before) / 2
        return ClockReading(name: name, offsetSeconds: theirs.timeIntervalSince1970 - midpoint,
                            uncertaintySeconds: after.timeIntervalSince(before) / 2)
    }

    /// The two clocks furthest apart among `readings` and this process (offset 0, named
    /// `local`), and how far (seconds): what the margin must cover.
    public static func widest(_ readings: [ClockReading], local: String) -> (String, String, Double)? {
        let all = [ClockReading(name: local, offsetSeconds: 0, uncertaintySeconds: 0)] + readings
        guard let low = all.min(by: { $0.offsetSeconds < $1.offsetSeconds }),
              let high = all.max(by: { $0.offsetSeconds < $1.offsetSeconds }), all.count > 1 else { return nil }
        return (low.name, high.name, high.offsetSeconds - low.offsetSeconds)
    }

    /// One line per clock, then the widest pair, with a warning past the margin.
    public static func report(_ readings: [ClockReading], local: String) -> [String] {
        let width = max(22, readings.map(\.name.count).max() ?? 0)
        var lines = readings.map { r in
            "  \(r.name.padding(toLength: width, withPad: " ", startingAt: 0)) " + String(format: "%+.3f s (±%.3f)", r.offsetSeconds, r.uncertaintySeconds)
        }
        if let (a, b, skew) = widest(readings, local: local) {
            let apart = String(format: "%.3f s apart", skew)
            lines.append(skew > margin
                ? "  WARNING: \(a) and \(b) are \(apart), past the \(Int(margin)) s margin the deadlines assume: a payment's \"no charge\" may be trusted before its last request's deadline; fix the clocks (NTP)"
                : "  widest: \(a) and \(b), \(apart) (margin \(Int(margin)) s)")
        }
        return lines
    }

    /// A `time_ms` field of a JSON body (what /healthz of serve and the gateway carry).
    public static func timeField(_ body: Data) -> Date? {
        guard let object = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let millis = (object["time_ms"] as? NSNumber)?.int64Value else { return nil }
        return Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}
