import PaymentsCore
import Testing

/// What `payments reconcile --adopt` takes from the provider's records, and under which ids.
@Suite struct AdoptionPlanTests {
    static func charge(_ key: String, job: Int64, amount: Int64 = 100, currency: String = "EUR", debtor: String? = "acct_a",
                       creditor: String? = "acct_b", refunded: Bool? = nil, chargeID: String = "ch_1") -> ChargeRecord {
        ChargeRecord(key: key, chargeID: chargeID, jobID: job, amountMinor: amount, currency: currency, refunded: refunded,
                     debtor: debtor, creditor: creditor, createdMillis: 1_700_000_000_000)
    }

    @Test func aValidRecordIsAdoptedUnderItsOldID() {
        let plan = AdoptionPlan(charges: [Self.charge("k1", job: 500)], currencies: ["EUR"], sequence: 1_000)
        #expect(plan.entries.map(\.charge.key) == ["k1"] && plan.entries[0].keepsID)
        #expect(plan.highestKeptID == 500 && plan.refused.isEmpty)
    }

    /// Each record intake would refuse is reported with its reason, and nothing else of it happens.
    @Test(arguments: [
        (charge("bad key", job: 1), "idempotency key"),
        (charge("k", job: 1, amount: 0), "amount_minor"),
        (charge("k", job: 1, amount: PaymentRequest.maxAmountMinor + 1), "amount_minor"),
        (charge("k", job: 1, currency: "XXX"), "currencies table"),
        (charge("k", job: 1, debtor: "a b"), "debtor and creditor must be"),
        (charge("k", job: 1, debtor: "same", creditor: "same"), "same account"),
        (charge("k", job: 1, chargeID: ""), "no charge id"),
    ])
    func aRecordIntakeWouldRefuseIsNotAdopted(record: ChargeRecord, reason: String) {
        let plan = AdoptionPlan(charges: [record], currencies: ["EUR"], sequence: 10)
        #expect(plan.entries.isEmpty)
        #expect(plan.refused.count == 1 && plan.refused[0].reason.contains(reason), "\(plan.refused)")
    }

    @Test func refundedAndAccountlessRecordsAreNotAdopted() {
        let plan = AdoptionPlan(charges: [Self.charge("r", job: 1, refunded: true), Self.charge("n", job: 2, debtor: nil)],
                                currencies: ["EUR"], sequence: 10)
        #expect(plan.entries.isEmpty && plan.refused.isEmpty && plan.withoutAccounts == ["n"])
    }

    /// A key listed twice is adopted once; a job id named twice is kept by the first only;
    /// an id far past the sequence (or not positive) is not kept, so it cannot move the
    /// sequence there.
    @Test func idsAreKeptOnlyWhereTheyCannotHarmTheSequence() {
        let plan = AdoptionPlan(charges: [
            Self.charge("a", job: 7), Self.charge("a", job: 8), Self.charge("b", job: 7),
            Self.charge("c", job: 1_000 + AdoptionPlan.idWindow), Self.charge("d", job: 1_001 + AdoptionPlan.idWindow),
            Self.charge("e", job: 0), Self.charge("f", job: -5),
        ], currencies: ["EUR"], sequence: 1_000)
        #expect(plan.entries.map { "\($0.charge.key)\($0.keepsID ? "+" : "-")" } == ["a+", "b-", "c+", "d-", "e-", "f-"])
        #expect(plan.refused.map(\.key) == ["a"] && plan.refused[0].reason.contains("twice"))
        #expect(plan.highestKeptID == 1_000 + AdoptionPlan.idWindow)
    }
}
