/// The jobs a worker pool holds between claim and recorded completion, by (job, claim):
/// after a lost lease the same process may claim the same job again, and the late
/// completion of the old claim must not release the new one (whose lease would then no
/// longer be extended, and which would run a second time). Keyed by the claim sequence,
/// which only rises, not the attempt, which a refund can bring back to an earlier value.
public struct HeldJobs: Sendable, Equatable {
    public struct Key: Hashable, Sendable {
        public var id: Int64
        public var claim: Int64
        public init(id: Int64, claim: Int64) {
            self.id = id
            self.claim = claim
        }
    }

    private var keys: Set<Key> = []

    public init() {}

    public var count: Int { keys.count }

    public mutating func hold(_ id: Int64, claim: Int64) { keys.insert(Key(id: id, claim: claim)) }

    /// Releases exactly this claim; a newer claim of the same job stays held.
    public mutating func release(_ id: Int64, claim: Int64) { keys.remove(Key(id: id, claim: claim)) }

    public func contains(_ id: Int64, claim: Int64) -> Bool { keys.contains(Key(id: id, claim: claim)) }

    /// Every held (job, claim): the leases to extend.
    public var all: [Key] { Array(keys) }
}
