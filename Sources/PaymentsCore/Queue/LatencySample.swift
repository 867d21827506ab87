/// A bounded reservoir of latencies (the most recent 200,000), enough for p50/p95/p99.
struct LatencySample: Sendable {
    private var values: [Double] = []
    private var next = 0
    private let capacity = 200_000

    mutating func add(_ samples: [Double]) {
        for v in samples {
            if values.count < capacity { values.append(v) } else { values[next] = v; next = (next + 1) % capacity }
        }
    }

    func percentiles(_ ps: [Double]) -> [Double] {
        guard !values.isEmpty else { return ps.map { _ in 0 } }
        let sorted = values.sorted()
        return ps.map { p in sorted[min(sorted.count - 1, Int((p / 100) * Double(sorted.count)))] }
    }
}
