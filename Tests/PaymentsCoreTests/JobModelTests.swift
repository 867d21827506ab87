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
        let failed = Completion.Resolution.failed(error: "declined")
        #expect(failed.outcome == .failed && failed.nextState == .failed && failed.error == "declined" && failed.chargeID == nil)
        let release = Completion.Resolution.release(reason: "shutdown")
        #expect(release.outcome == .released && release.nextState == .queued && release.refundsAttempt && release.delay == .zero)
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
