import Foundation
import Testing
import PaymentsCore

@Suite struct JobModelTests {
    static let job = Job(
        id: 7, idempotencyKey: "k-7", payment: Payment(amountMinor: 1234, currency: "EUR", debtor: "acct_1", creditor: "acct_2"),
        priority: 100, maxAttempts: 5, state: .succeeded, attempt: 2, lastError: nil, chargeID: "ch_1",
        createdAt: "2026-11-27T10:00:00.000000Z", updatedAt: "2026-11-27T10:00:01.000000Z", finishedAt: "2026-11-27T10:00:01.000000Z",
        postings: [.init(side: "debit", account: "acct_1", amountMinor: -1234, currency: "EUR", postedAt: "2026-11-27T10:00:01.000000Z")])

    /// The API's JSON is flat: the payment's fields beside the job's, absent optionals omitted.
    @Test func encodesFlatWithTheAPIsFieldNames() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let object = try #require(try JSONSerialization.jsonObject(with: encoder.encode(Self.job)) as? [String: Any])
        #expect(Set(object.keys) == ["id", "idempotency_key", "amount_minor", "currency", "debtor", "creditor", "priority",
                                     "max_attempts", "state", "attempt", "charge_id", "created_at", "updated_at", "finished_at", "postings"])
        #expect(object["amount_minor"] as? Int == 1234)
        #expect(object["state"] as? String == "succeeded")
        #expect(object["last_error"] == nil)
        #expect(try JSONDecoder().decode(Job.self, from: encoder.encode(Self.job)) == Self.job)
    }

    @Test func statesKnowWhetherTheyAreTerminal() {
        #expect(JobState.terminal == [.succeeded, .failed, .cancelled])
        #expect(JobState.open == [.queued, .running, .reconciling])
        #expect(JobState(rawValue: "reconciling") == .reconciling)
    }

    /// What each resolution does to the row (the completion statement binds these).
    @Test func resolutionsMapToTheirNextState() {
        let unknown = Completion.Resolution.reconcile(error: "lost answer", after: .seconds(4))
        #expect(unknown.outcome == .reconciling && unknown.nextState == .reconciling && unknown.delay == .seconds(4) && !unknown.refundsAttempt)
        let succeeded = Completion.Resolution.succeeded(chargeID: "ch_9")
        #expect(succeeded.outcome == .succeeded && succeeded.nextState == .succeeded && succeeded.chargeID == "ch_9" && succeeded.error == nil)
        let retry = Completion.Resolution.retry(error: "timeout", after: .milliseconds(1500))
        #expect(retry.outcome == .retried && retry.nextState == .queued && retry.delay == .milliseconds(1500) && !retry.refundsAttempt)
        let failed = Completion.Resolution.failed(reason: .cardDeclined, error: "declined")
        #expect(failed.outcome == .failed && failed.nextState == .failed && failed.error == "declined" && failed.chargeID == nil)
        #expect(failed.failureReason == .cardDeclined)
        let release = Completion.Resolution.release(reason: "shutdown")
        #expect(release.outcome == .released && release.nextState == .queued && release.refundsAttempt && release.delay == .zero)
        // Not an attempt: another request for the key was still in progress at the gateway.
        let delayed = Completion.Resolution.delay(error: "in progress", after: .seconds(17))
        #expect(delayed.outcome == .delayed && delayed.nextState == .queued && delayed.refundsAttempt && delayed.delay == .seconds(17))
        // The reconciler's three ends besides posting: queued again, cancelled, held.
        let requeue = Completion.Resolution.requeue(error: "not charged")
        #expect(requeue.outcome == .requeued && requeue.nextState == .queued && !requeue.refundsAttempt && requeue.delay == .zero)
        let cancelled = Completion.Resolution.cancelled(reason: "cancelled")
        #expect(cancelled.outcome == .cancelled && cancelled.nextState == .cancelled && cancelled.failureReason == nil)
        let held = Completion.Resolution.hold(reason: .chargeMismatch, error: "another amount")
        #expect(held.outcome == .held && held.nextState == .reconciling && held.heldReason == .chargeMismatch)
    }

    /// The closed set of failure reasons: every provider decline code maps into it, and
    /// only `budget_exhausted` is not a decline.
    @Test func failureReasonsAreAClosedSet() {
        #expect(FailureReason(declineCode: "card_declined") == .cardDeclined)
        #expect(FailureReason(declineCode: "insufficient_funds") == .insufficientFunds)
        #expect(FailureReason(declineCode: "something_new") == .declined)
        #expect(FailureReason(declineCode: nil) == .declined)
        #expect(FailureReason.allCases.filter { !$0.isDecline } == [.budgetExhausted])
        #expect(Set(FailureReason.allCases.map(\.rawValue)) == ["card_declined", "insufficient_funds", "account_blocked", "declined", "budget_exhausted"])
    }

    /// Every answer that says "charged" is matched to its payment before it is posted.
    @Test func aChargeRecordIsMatchedByKeyAmountAndCurrency() {
        let payment = Payment(amountMinor: 100, currency: "EUR", debtor: "a", creditor: "b")
        let record = ChargeRecord(key: "k-1", chargeID: "ch_1", jobID: 1, amountMinor: 100, currency: "EUR")
        #expect(record.isCharge(of: "k-1", for: payment))
        #expect(!record.isCharge(of: "k-2", for: payment))
        var other = record
        other.amountMinor = 101
        #expect(!other.isCharge(of: "k-1", for: payment))
        other = record
        other.currency = "USD"
        #expect(!other.isCharge(of: "k-1", for: payment))
        other = record
        other.chargeID = ""
        #expect(!other.isCharge(of: "k-1", for: payment))
    }

    /// A charge is due within the gateway timeout and never after the lease its claim got:
    /// once that lease may have expired, no charge of the attempt can land (the reaper's
    /// re-run and the reconciler's "no charge" rely on it). Heartbeats extend the lease in
    /// the database, not this deadline.
    @Test func aChargesDeadlineIsTheTimeoutOrTheClaimsLeaseEndWhicheverIsFirst() {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let job = ClaimedJob(id: 1, idempotencyKey: "k-1", payment: Payment(amountMinor: 1, currency: "EUR", debtor: "a", creditor: "b"),
                             attempt: 2, maxAttempts: 5, leaseExpiresAt: now + 30)
        let early = job.chargeRequest(within: .seconds(15), now: now)
        #expect(early.deadline == now + 15)
        #expect(early.idempotencyKey == "k-1" && early.jobID == 1 && early.attempt == 2)
        // Late in the lease (a slow claim, a long wait for a connection): capped at its end.
        #expect(job.chargeRequest(within: .seconds(15), now: now + 20).deadline == now + 30)
        // Past the lease's end: already due, so the gateway refuses it unsent.
        #expect(job.chargeRequest(within: .seconds(15), now: now + 31).deadline == now + 30)
    }

    @Test func aRequestsFingerprintCoversEveryField() {
        let base = PaymentRequest(amountMinor: 1, currency: "EUR", debtor: "a", creditor: "b")
        var other = base
        other.priority = 5
        #expect(base.fingerprint != other.fingerprint)
        other = base
        other.payment.amountMinor = 2
        #expect(base.fingerprint != other.fingerprint)
    }
}

@Suite struct EmbeddedMigrationsTests {
    static let folder = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Migrations")

    /// The binary carries Migrations/ byte for byte: same names, same checksums, so a
    /// database migrated from the files is up to date for the binary and the reverse.
    @Test func theBinaryCarriesTheMigrationsFolderExactly() throws {
        let embedded = try Migration.embedded()
        let onDisk = try Migration.load(from: Self.folder)
        #expect(embedded.map(\.name) == onDisk.map(\.name))
        #expect(embedded.map(\.checksum) == onDisk.map(\.checksum))
        #expect(embedded.first?.name == "0001_currencies.sql")
    }
}
