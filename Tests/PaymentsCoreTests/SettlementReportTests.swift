import Testing
import PaymentsCore

/// The settlement comparison's rules, each from what both sides said.
@Suite struct SettlementReportTests {
    static func charge(_ key: String, amount: Int64 = 500, currency: String = "EUR", id: String = "ch_1", refunded: Bool? = nil) -> ChargeRecord {
        ChargeRecord(key: key, chargeID: id, jobID: 1, amountMinor: amount, currency: currency, refunded: refunded, debtor: "a", creditor: "b")
    }

    static func payment(_ state: JobState, amount: Int64 = 500, currency: String = "EUR", chargeID: String? = "ch_1") -> SettlementReport.Payment {
        .init(id: 1, state: state, amountMinor: amount, currency: currency, chargeID: chargeID)
    }

    @Test func aMatchingSucceededPaymentIsClean() {
        var report = SettlementReport()
        report.add(charge: Self.charge("k"), payment: Self.payment(.succeeded))
        #expect(report.isClean && report.chargesListed == 1)
    }

    @Test func aChargeTheDatabaseDoesNotKnowIsFound() {
        var report = SettlementReport()
        report.add(charge: Self.charge("k"), payment: nil)
        #expect(report.unknownKeys.map(\.key) == ["k"] && !report.isClean)
        var refunded = SettlementReport()
        refunded.add(charge: Self.charge("k", refunded: true), payment: nil)
        #expect(refunded.isClean, "money given back needs no payment")
    }

    @Test(arguments: [JobState.failed, .cancelled])
    func aChargeOfAPaymentThatDidNotSucceedIsFound(_ state: JobState) {
        var report = SettlementReport()
        report.add(charge: Self.charge("k"), payment: Self.payment(state, chargeID: nil))
        #expect(report.notSucceeded.count == 1 && !report.isClean)
        var refunded = SettlementReport()
        refunded.add(charge: Self.charge("k", refunded: true), payment: Self.payment(state, chargeID: nil))
        #expect(refunded.isClean, "a refunded charge of a cancelled payment is the held-payment runbook's end")
    }

    @Test(arguments: [JobState.queued, .running, .reconciling])
    func anOpenPaymentWithAChargeSettlesByItself(_ state: JobState) {
        var report = SettlementReport()
        report.add(charge: Self.charge("k"), payment: Self.payment(state, chargeID: nil))
        #expect(report.open.count == 1 && report.isClean)
    }

    @Test func mismatchesAreFound() {
        var report = SettlementReport()
        report.add(charge: Self.charge("amount", amount: 501), payment: Self.payment(.succeeded))
        report.add(charge: Self.charge("currency", currency: "USD"), payment: Self.payment(.succeeded))
        report.add(charge: Self.charge("charge-id", id: "ch_2"), payment: Self.payment(.succeeded))
        #expect(report.mismatches.map(\.key) == ["amount", "currency", "charge-id"])
    }

    @Test func aSucceededPaymentWithoutItsChargeIsFound() {
        var report = SettlementReport()
        report.add(charge: Self.charge("k", refunded: true), payment: Self.payment(.succeeded))
        report.addSucceededWithoutCharge(key: "gone", paymentID: 2, chargeID: "ch_9")
        #expect(report.succeededWithoutCharge.map(\.key) == ["k", "gone"] && !report.isClean)
    }

    @Test func olderRecordsWithoutAccountsStillDecode() throws {
        let old = #"{"amount_minor":5,"charge_id":"ch_1","currency":"EUR","job_id":7,"key":"k"}"#
        let record = try #require(ChargeRecord.decode(Array(old.utf8)))
        #expect(record.payment == nil && record.createdMillis == nil)
        let new = Self.charge("k")
        #expect(ChargeRecord.decode(new.json) == new)
    }
}
