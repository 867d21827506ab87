import Synchronization

/// Reads answered per node, for /v1/stats, `payments status` and the demo's proof that
/// both replicas serve.
public final class ReadCounters: Sendable {
    private let counts = Mutex<[String: Int]>([:])
    public init() {}
    public func record(_ node: String) { counts.withLock { $0[node, default: 0] += 1 } }
    public var snapshot: [String: Int] { counts.withLock { $0 } }
}
