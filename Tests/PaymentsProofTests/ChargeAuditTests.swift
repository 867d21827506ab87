import PaymentsCore
import PaymentsProof
import Testing

/// The gateway audit must be able to fail: each way the money can go wrong, injected on
/// purpose, turns its check red (the checks before this compared only key counts).
@Suite struct ChargeAuditTests {
    static let job = JobCharge(key: "k-1", id: 1, state: .succeeded, chargeID: "ch_1", amountMinor: 500, currency: "EUR")
    static let charge = ChargeRecord(key: "k-1", chargeID: "ch_1", jobID: 1, amountMinor: 500, currency: "EUR")

    func failing(_ charges: [ChargeRecord], _ jobs: [JobCharge]) -> [String] {
        ChargeAudit.checks(charges: charges, jobs: jobs).filter { !$0.passed }.map(\.name)
    }

    @Test func matchingSetsPass() {
        let declined = JobCharge(key: "k-2", id: 2, state: .failed, chargeID: nil, amountMinor: 9, currency: "USD")
        #expect(failing([Self.charge], [Self.job, declined]).isEmpty)
    }

    @Test func aChargeWhoseJobFailedFails() {
        var job = Self.job
        job.state = .failed
        job.chargeID = nil
        #expect(failing([Self.charge], [job]).contains("every gateway charge is one succeeded job's, same amount and currency"))
    }

    /// An operator's way out of a charge that was not its payment's: refunded at the
    /// provider, it needs no succeeded payment; a succeeded payment's charge refunded fails.
    @Test func aRefundedChargeNeedsNoSucceededJobAndMayNotBeOne() {
        var refunded = Self.charge
        refunded.refunded = true
        refunded.amountMinor = 999
        var cancelled = Self.job
        cancelled.state = .cancelled
        cancelled.chargeID = nil
        #expect(failing([refunded], [cancelled]).isEmpty)
        var own = Self.charge
        own.refunded = true
        #expect(failing([own], [Self.job]).contains("no succeeded job's charge was refunded"))
    }

    @Test func aChargeWithNoJobFails() {
        #expect(failing([Self.charge], []) == ["every gateway charge is one succeeded job's, same amount and currency"])
    }

    @Test func aSucceededJobWithoutAChargeFails() {
        #expect(failing([], [Self.job]) == ["every succeeded job was charged at the gateway"])
        var other = Self.charge
        other.chargeID = "ch_other"  // charged, but the job records another charge id
        #expect(failing([other], [Self.job]).contains("every succeeded job was charged at the gateway"))
    }

    @Test func anAmountOrCurrencyMismatchFails() {
        var charge = Self.charge
        charge.amountMinor = 501
        #expect(!failing([charge], [Self.job]).isEmpty)
        charge = Self.charge
        charge.currency = "USD"
        #expect(!failing([charge], [Self.job]).isEmpty)
    }

    @Test func aKeyChargedTwiceFails() {
        #expect(failing([Self.charge, Self.charge], [Self.job]).contains("gateway charged each idempotency key at most once"))
    }

    @Test func aJobChargedUnderTwoKeysFails() {
        let second = ChargeRecord(key: "k-9", chargeID: "ch_9", jobID: 1, amountMinor: 500, currency: "EUR")
        #expect(failing([Self.charge, second], [Self.job]).contains("no job charged under two keys"))
    }
}
