import Histogram

/// Enqueue-to-completion latencies of every job this process finished, in an HDR
/// histogram: recording is O(1) and a percentile costs a walk over a fixed number of
/// buckets, however many jobs went through and however often /v1/stats is asked
/// (it replaced a 200,000-value reservoir sorted on every call).
public struct LatencyHistogram: Sendable {
    /// Microseconds, 1 µs to 1 hour, 3 significant digits (about 190 KB of counters).
    private var histogram = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000,
                                              numberOfSignificantValueDigits: .three)

    public init() {}

    public var count: Int { Int(histogram.totalCount) }

    public mutating func add(_ seconds: some Sequence<Double>) {
        for value in seconds {
            // Clamped: a clock step must not lose the sample (nor trap on a negative value).
            let clamped = value.isNaN ? 0 : min(max(value, 0), 3_600)
            let micros = UInt64(clamped * 1_000_000)
            histogram.record(max(micros, 1))
        }
    }

    /// Seconds at each percentile (0-100); zeros while empty.
    public func percentiles(_ ps: [Double]) -> [Double] {
        guard histogram.totalCount > 0 else { return ps.map { _ in 0 } }
        return ps.map { Double(histogram.valueAtPercentile($0)) / 1_000_000 }
    }
}
