/// Patroni's `GET /cluster`: who leads, who is the synchronous standby, on which
/// timeline, how far behind each member is. Any member answers for the whole cluster.
public struct PatroniCluster: Sendable, Codable, Equatable {
    public struct Member: Sendable, Codable, Equatable {
        public var name: String
        /// leader, sync_standby, replica (Patroni 3); 4 adds quorum_standby, names the primary leader too.
        public var role: String
        public var state: String
        public var timeline: Int?
        /// Bytes behind the leader; nil when Patroni says "unknown" or for the leader.
        public var lagBytes: Int64?

        enum CodingKeys: String, CodingKey { case name, role, state, timeline, lag }

        public init(name: String, role: String, state: String, timeline: Int?, lagBytes: Int64?) {
            self.name = name
            self.role = role
            self.state = state
            self.timeline = timeline
            self.lagBytes = lagBytes
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decode(String.self, forKey: .name)
            role = try c.decode(String.self, forKey: .role)
            state = try c.decodeIfPresent(String.self, forKey: .state) ?? "unknown"
            timeline = try? c.decodeIfPresent(Int.self, forKey: .timeline)
            lagBytes = try? c.decodeIfPresent(Int64.self, forKey: .lag)  // "unknown" decodes as nil
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(role, forKey: .role)
            try c.encode(state, forKey: .state)
            try c.encodeIfPresent(timeline, forKey: .timeline)
            try c.encodeIfPresent(lagBytes, forKey: .lag)
        }
    }

    public var members: [Member]

    public var leader: Member? { members.first { $0.role == "leader" || $0.role == "standby_leader" } }
    public var syncStandby: String? { members.first { $0.role == "sync_standby" }?.name }
    public var timeline: Int? { leader?.timeline }
}
