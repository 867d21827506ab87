import Synchronization

/// Reads answered per node, for /v1/stats, `payments status` and the demo's proof that
/// both replicas serve.
public final class ReadCounters: Sendable {
    private let state = Mutex<(counts: [String: Int], replicas: Set<String>)>(([:], []))
    public init() {}
    public func record(_ source: ReadSource) {
        state.withLock { s in
            s.counts[source.node, default: 0] += 1
            if source.kind == .replica { s.replicas.insert(source.node) }
        }
    }
    public var snapshot: [String: Int] { state.withLock { $0.counts } }
    /// The nodes that answered at least one read while in recovery. By state, not by
    /// name: under Patroni a node's role changes with each failover (node-2 may serve as
    /// a replica, then lead), and a name says nothing about it.
    public var replicaNodes: Set<String> { state.withLock { $0.replicas } }
}
