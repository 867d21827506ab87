/// The jobs a worker pool holds between claim and recorded completion, by (job, attempt):
/// after a lost lease the same process may claim the same job again, and the late
/// completion of the old attempt must not release the new one (whose lease would then no
/// longer be extended, and which would run a second time).
public struct HeldJobs: Sendable, Equatable {
    public struct Key: Hashable, Sendable {
        public var id: Int64
        public var attempt: Int32
        public init(id: Int64, attempt: Int32) {
            self.id = id
            self.attempt = attempt
        }
    }

    private var keys: Set<Key> = []

    public init() {}

    public var count: Int { keys.count }

    public mutating func hold(_ id: Int64, attempt: Int32) { keys.insert(Key(id: id, attempt: attempt)) }

    /// Releases exactly this attempt; a newer attempt of the same job stays held.
    public mutating func release(_ id: Int64, attempt: Int32) { keys.remove(Key(id: id, attempt: attempt)) }

    public func contains(_ id: Int64, attempt: Int32) -> Bool { keys.contains(Key(id: id, attempt: attempt)) }

    /// Every held (job, attempt): the leases to extend.
    public var all: [Key] { Array(keys) }
}
