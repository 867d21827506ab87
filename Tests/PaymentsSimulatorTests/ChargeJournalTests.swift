import Foundation
import PaymentsCore
@testable import PaymentsSimulator
import Testing

/// The gateway's journal is the provider's memory of every charge: a key it forgets can be
/// charged again. Issue 24, finding 4: it was neither locked nor read strictly.
@Suite struct ChargeJournalTests {
    static func path() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("journal-\(UUID().uuidString).jsonl").path
    }

    static func line(_ key: String, _ n: Int) -> String {
        #"{"amount_minor":100,"charge_id":"ch_\#(n)","currency":"EUR","job_id":\#(n),"key":"\#(key)"}"#
    }

    /// Two gateways on one journal each deduplicated alone: the second refuses to start.
    @Test func aSecondStoreOnTheSameJournalRefusesToOpen() throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let first = try ChargeStore(path: path)
        #expect(throws: PaymentsError.self) { _ = try ChargeStore(path: path) }
        do {
            _ = try ChargeStore(path: path)
        } catch {
            #expect("\(error)".contains("in use"), "\(error)")
        }
        _ = first
    }

    /// An unreadable line other than a torn last one made its key chargeable again and was
    /// skipped silently: it stops the start, naming its line.
    @Test func aDamagedLineStopsTheStartWithItsLineNumber() throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = [Self.line("k-1", 1), "{\"amount_minor\":100,garbage", Self.line("k-3", 3)].joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try ChargeStore(path: path)
            Issue.record("a damaged journal was opened")
        } catch {
            #expect("\(error)".contains("line 2"), "\(error)")
        }
        #expect(throws: PaymentsError.self) { _ = try ChargeJournal.read(path) }
    }

    /// A crash mid-write leaves a torn last line: that one is tolerated (it was never
    /// acknowledged, since the fsync had not returned) and the store opens.
    @Test func aTornLastLineIsTolerated() throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let text = Self.line("k-1", 1) + "\n" + Self.line("k-2", 2) + "\n" + "{\"amount_minor\":1"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let store = try ChargeStore(path: path)
        #expect(store.chargeCount == 2)
        #expect(try ChargeJournal.read(path).count == 2)
    }
}

extension ChargeJournalTests {
    /// A refund line replaces the charge it refunds; the same charge written twice stays
    /// twice (the proofs must see a key charged twice: the fault suite's sabotage).
    @Test func aRefundReplacesItsChargeAndARepeatedLineStaysTwo() throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let refunded = #"{"amount_minor":100,"charge_id":"ch_1","currency":"EUR","job_id":1,"key":"k-1","refunded":true}"#
        let text = [Self.line("k-1", 1), Self.line("k-2", 2), refunded, Self.line("k-2", 2)].joined(separator: "\n") + "\n"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let records = try ChargeJournal.read(path)
        #expect(records.map(\.key) == ["k-1", "k-2", "k-2"])
        #expect(records[0].isRefunded && !records[1].isRefunded)
    }
}

extension ChargeJournalTests {
    /// The charges are split over the store's shards by key: each key keeps its state, the
    /// settlement listing keeps the order the charges were made in, across shards and
    /// across a restart, and a refund stays with its charge.
    @Test func manyChargesKeepTheirStateAndTheirOrderAcrossShardsAndARestart() throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let keys = (0..<2_000).map { "many-\($0 * 7919 % 2_000)" }
        let payment = Payment(amountMinor: 100, currency: "EUR", debtor: "acct_a", creditor: "acct_b")
        do {
            let store = try ChargeStore(path: path)
            let done = DispatchGroup()
            for (n, key) in keys.enumerated() {
                #expect(store.begin(key: key) == .started)
                #expect(store.begin(key: key) == .inProgress)
                done.enter()
                store.commit(key: key, payment: payment, jobID: Int64(n)) { _, _ in done.leave() }
            }
            done.wait()
            #expect(Set(keys.map(ChargeStore.shardIndex)).count == ChargeStore.shardCount)
            #expect(store.chargeCount == keys.count)
            for key in keys {
                guard case .charged(let record) = store.begin(key: key) else { Issue.record("\(key) not charged"); continue }
                #expect(record.key == key && store.lookup(key: key) == .charged(record))
            }
            #expect(store.lookup(key: "never") == .unknown)
            let first = store.page(since: 0, limit: 1_500), rest = store.page(since: first.next, limit: 1_500)
            #expect(first.hasMore && !rest.hasMore && first.next == 1_500)
            #expect((first.records + rest.records).map(\.key) == keys)
            guard case .charged(let refundable) = store.lookup(key: keys[10]) else { Issue.record("no charge"); return }
            done.enter()
            store.refund(key: keys[10], chargeID: refundable.chargeID) { record in
                #expect(record?.isRefunded == true)
                done.leave()
            }
            done.wait()
            store.close()
        }
        let reopened = try ChargeStore(path: path)
        #expect(reopened.chargeCount == keys.count)
        #expect(reopened.page(since: 0, limit: 5_000).records.map(\.key) == keys)
        guard case .charged(let refunded) = reopened.lookup(key: keys[10]) else { Issue.record("refund lost"); return }
        #expect(refunded.isRefunded)
    }
}

extension ChargeJournalTests {
    /// A charge a lookup reports is in the settlement listing already: a reconciliation
    /// that lists the charges just after a retry was answered "charged" must find it there
    /// (else it reports a succeeded payment without a charge). With the store in shards the
    /// listing's order was appended after the shard's update, outside its lock.
    @Test func aChargeThatLookupsReportIsAlreadyListed() async throws {
        let path = Self.path()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try ChargeStore(path: path)
        let keys = (0..<20_000).map { "listed-\($0)" }
        let payment = Payment(amountMinor: 100, currency: "EUR", debtor: "acct_a", creditor: "acct_b")
        let unlisted = await withTaskGroup(of: Int.self) { group in
            group.addTask {
                for (n, key) in keys.enumerated() {
                    _ = store.begin(key: key)
                    store.commit(key: key, payment: payment, jobID: Int64(n)) { _, _ in }
                }
                return 0
            }
            group.addTask {
                // Follows the commits: as soon as a key reads as charged, the listing must hold it.
                // It waits for "charged" itself: a follower that got ahead of the commits saw a
                // key go from unknown to in progress and checked the listing before the charge
                // (2026-12-08, CI: 559 keys "missing" that were never reported charged).
                var missing = 0
                for (n, key) in keys.enumerated() {
                    while true {
                        if case .charged = store.lookup(key: key) { break }
                    }
                    if store.page(since: n, limit: 1).records.first?.key != key { missing += 1 }
                }
                return missing
            }
            return await group.reduce(0, +)
        }
        #expect(unlisted == 0)
        store.close()
    }
}
