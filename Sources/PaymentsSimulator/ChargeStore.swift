import PaymentsCore
import Foundation
import Synchronization

/// The gateway's memory of every charge it accepted, by idempotency key: durable (a
/// journal of JSON lines, fsynced before a charge is acknowledged, read back at start) and
/// the one place every `serve` asks, so a key is charged at most once across processes
/// and across the gateway's own restarts.
///
/// A key has three states: unknown, in progress (a request for it is being processed) and
/// charged. Lookups report "in progress" rather than "unknown" while a request is being
/// processed, so a reconciler never concludes "not charged" while a charge may still land.
public final class ChargeStore: Sendable {
    public enum Begin: Sendable, Equatable {
        /// The key is now in progress: the caller must `commit` or `abandon` it.
        case started
        /// Already charged: answer with this record (or 409 if the payment differs).
        case charged(ChargeRecord)
        /// Another request for this key is being processed.
        case inProgress
    }

    public enum Lookup: Sendable, Equatable {
        case charged(ChargeRecord)
        case inProgress
        case unknown
    }

    /// The charges and requests in progress of the keys that hash to one shard. Split so
    /// that growing a dictionary rehashes a 64th of the charges under one lock: one
    /// dictionary of every charge grew in one go on the journal's thread while every event
    /// loop's `begin` waited on its lock, a pause that grew with the charges on record (up
    /// to 0.73 s at a million, `scripts/bench gateway`; docs/benchmarks.md).
    struct Shard {
        var charges: [String: ChargeRecord] = [:]
        var inProgress: Set<String> = []
    }

    /// A shard's lock, in a class: a Mutex cannot sit in an Array.
    final class ShardLock: Sendable {
        let state: Mutex<Shard>
        init(_ shard: Shard) { state = Mutex(shard) }
    }

    struct Journal {
        /// Keys in the order they were first charged: the settlement listing's order (a
        /// refund changes a charge, not its place).
        var order: [String]
        var nextCharge = 0
        /// Group commit: lines waiting for the next write + fsync, and who waits on them.
        var pending: [(line: [UInt8], done: @Sendable () -> Void)] = []
        var flushing = false
        /// Set by `close`: nothing more is written.
        var closed = false
        var fdClosed = false
    }

    static let shardCount = 64

    public let path: String
    private let fd: Int32
    private let shards: [ShardLock]
    private let state: Mutex<Journal>
    /// Distinguishes charge ids across restarts of the gateway.
    private let epoch = String(UInt64(Date().timeIntervalSince1970 * 1000), radix: 36)
    private let flushQueue = DispatchQueue(label: "gateway.journal")

    public init(path: String) throws {
        self.path = path
        let journal = try ChargeJournal.open(path)
        self.fd = journal.fd
        var shards = [Shard](repeating: Shard(), count: Self.shardCount)
        var order: [String] = []
        for record in journal.records {
            if shards[Self.shardIndex(record.key)].charges.updateValue(record, forKey: record.key) == nil { order.append(record.key) }
        }
        self.shards = shards.map(ShardLock.init)
        self.state = Mutex(Journal(order: order))
    }

    static func shardIndex(_ key: String) -> Int { Int(UInt(bitPattern: key.hashValue) % UInt(shardCount)) }

    private func shard(_ key: String) -> ShardLock { shards[Self.shardIndex(key)] }

    deinit {
        if !state.withLock({ $0.fdClosed }) { Foundation.close(fd) }
    }

    /// Lets the group commit in progress finish (its charges are on disk and answered),
    /// then releases the journal, so another store may open it at once (a gateway's
    /// restart in the same process: the tests). A charge committed after this is neither
    /// written nor answered: its caller learns nothing, as when a provider stops mid-call.
    public func close() {
        state.withLock { $0.closed = true }
        // On the journal's queue, behind the flush in progress: every caller returns with
        // the journal closed, not only the first.
        flushQueue.sync {
            let open = state.withLock { s -> Bool in
                defer { s.fdClosed = true }
                return !s.fdClosed
            }
            if open { Foundation.close(fd) }
        }
    }

    public var chargeCount: Int { shards.reduce(0) { $0 + $1.state.withLock { $0.charges.count } } }

    public func begin(key: String) -> Begin {
        shard(key).state.withLock { s in
            if let record = s.charges[key] { return .charged(record) }
            if s.inProgress.contains(key) { return .inProgress }
            s.inProgress.insert(key)
            return .started
        }
    }

    /// The request for `key` ends without a charge.
    public func abandon(key: String) {
        _ = shard(key).state.withLock { $0.inProgress.remove(key) }
    }

    /// Charges `key`: the record is on disk (fsynced) before `then` is called, and only
    /// then visible to lookups. A write that fails stops the process (see `flush`).
    /// `then` gets the record and its JSON (written once for the journal's line and the
    /// answer), on the journal's thread: a callback, not an async function, because the
    /// gateway's server answers from its event loop without a task per request.
    public func commit(key: String, payment: Payment, jobID: Int64, then done: @escaping @Sendable (ChargeRecord, [UInt8]) -> Void) {
        let record = state.withLock { s -> ChargeRecord in
            s.nextCharge += 1
            return ChargeRecord(key: key, chargeID: "ch_\(epoch)_\(s.nextCharge)", jobID: jobID,
                                amountMinor: payment.amountMinor, currency: payment.currency,
                                debtor: payment.debtor, creditor: payment.creditor,
                                createdMillis: Int64(Date().timeIntervalSince1970 * 1000))
        }
        let json = record.json
        write(json) { [self] in
            // Charged and listed in one step, the listing's place taken inside the shard's
            // lock (shard, then journal: no path takes them the other way): a key a lookup
            // reports charged is already listed, and a listed key's record is found.
            shard(key).state.withLock { s in
                s.charges[key] = record
                s.inProgress.remove(key)
                state.withLock { $0.order.append(key) }
            }
            done(record, json)
        }
    }

    /// Refunds charge `chargeID` of `key` (idempotent): the refund is on disk before `then`
    /// is called (a line with the record marked refunded; the last line of a charge wins
    /// when the journal is read). Nil when the key holds no such charge.
    public func refund(key: String, chargeID: String, then done: @escaping @Sendable (ChargeRecord?) -> Void) {
        let found = shard(key).state.withLock { s -> ChargeRecord? in
            guard let record = s.charges[key], record.chargeID == chargeID else { return nil }
            return record
        }
        guard var record = found else { return done(nil) }
        if record.isRefunded { return done(record) }
        record.refunded = true
        write(record.json) { [self, record] in
            shard(key).state.withLock { $0.charges[key] = record }
            done(record)
        }
    }

    /// Appends a record's JSON as a line with the next group commit and calls `done` once
    /// it is fsynced.
    private func write(_ json: [UInt8], then done: @escaping @Sendable () -> Void) {
        let flusher = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.pending.append((json, done))
            guard !s.flushing else { return false }
            s.flushing = true
            return true
        }
        // fsync blocks: keep it off the event loops.
        if flusher { flushQueue.async { self.flush() } }
    }

    /// Up to `limit` charges after the first `since` in the order they were made, and the
    /// cursor of the next page: the provider's settlement listing (`GET /v1/charges?since=`).
    public func page(since: Int, limit: Int) -> (records: [ChargeRecord], next: Int, hasMore: Bool) {
        let (keys, end, hasMore) = state.withLock { s in
            let start = min(max(since, 0), s.order.count)
            let end = min(start + limit, s.order.count)
            return (Array(s.order[start..<end]), end, end < s.order.count)
        }
        return (keys.compactMap { key in shard(key).state.withLock { $0.charges[key] } }, end, hasMore)
    }

    public func lookup(key: String) -> Lookup {
        shard(key).state.withLock { s in
            if let record = s.charges[key] { return .charged(record) }
            return s.inProgress.contains(key) ? .inProgress : .unknown
        }
    }

    /// Writes every pending line in one write(2) and one fsync, resumes their waiters,
    /// and goes on while more arrived meanwhile: one disk flush covers many charges.
    private func flush() {
        while true {
            let batch = state.withLock { s -> [(line: [UInt8], done: @Sendable () -> Void)] in
                let batch = s.closed ? [] : s.pending
                s.pending = []
                if batch.isEmpty { s.flushing = false }
                return batch
            }
            if batch.isEmpty { return }
            let result = ChargeJournal.write(fd: fd, ChargeJournal.lines(batch.map(\.line)))
                .flatMap { fsync(fd) == 0 ? .success(()) : .failure(JournalError(reason: "fsync: \(String(cString: strerror(errno)))")) }
            if case let .failure(error) = result {
                // Some of these lines may be on disk already: answering "not charged" could
                // contradict the journal read at the next start. Stop, as PostgreSQL does on a
                // failed fsync; the restart's journal is the truth.
                fatalError("\(error)")
            }
            for (_, done) in batch { done() }
        }
    }
}

