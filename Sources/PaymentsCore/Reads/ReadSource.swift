/// Where a read was answered, and how far behind that node was.
public struct ReadSource: Sendable, Equatable {
    public enum Kind: String, Sendable { case replica, primary }
    public var kind: Kind
    /// The node's name: its `payments.node` setting where set (HA mode: payments-node-1..3,
    /// since Patroni sets every node's cluster_name to the cluster's scope), else its
    /// cluster_name (the seed: payments-primary, payments-replica-1, payments-replica-2).
    public var node: String
    public var lagSeconds: Double?
    /// The read came from the primary through pgbouncer-write because the read path
    /// failed or its answer could not be used.
    public var viaWritePath: Bool
    /// Why a replica's answer was not used, if it was not.
    public var reason: String?

    public init(kind: Kind, node: String, lagSeconds: Double?, viaWritePath: Bool = false, reason: String? = nil) {
        self.kind = kind
        self.node = node
        self.lagSeconds = lagSeconds
        self.viaWritePath = viaWritePath
        self.reason = reason
    }
}

/// A value read through the read path, with the node that answered.
public struct Routed<Value: Sendable>: Sendable {
    public var value: Value
    public var source: ReadSource

    public init(value: Value, source: ReadSource) {
        self.value = value
        self.source = source
    }
}
