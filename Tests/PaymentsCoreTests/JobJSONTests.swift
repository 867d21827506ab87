import Foundation
@testable import PaymentsCore
import Testing

/// The status read's JSON is written by hand (`Job.json`) and its postings read by
/// FlatJSON: both must agree with Foundation's coders on every job.
@Suite struct JobJSONTests {
    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    static let posting = Job.Posting(side: "debit", account: "acct_1", amountMinor: 1999, currency: "EUR",
                                     postedAt: "2026-12-05T07:40:35.123456Z")

    static let jobs: [Job] = [
        Job(id: 1, idempotencyKey: "k-1", payment: Payment(amountMinor: 1999, currency: "EUR", debtor: "acct_1", creditor: "acct_2"),
            priority: 0, maxAttempts: 5, state: .queued, attempt: 0, createdAt: "2026-12-05T07:40:35.123456Z",
            updatedAt: "2026-12-05T07:40:35.123456Z"),
        Job(id: Int64.max, idempotencyKey: "key/with \"quotes\" and \\ slashes", payment: Payment(amountMinor: 1, currency: "JPY",
            debtor: "débiteur ✓ 𝄞", creditor: "tab\there\nnew\u{1}line\u{1f}\r\u{8}\u{c}"),
            priority: -3, maxAttempts: 50, state: .failed, attempt: 7, lastError: "gateway: card declined (insufficient_funds)",
            chargeID: nil, createdAt: "a", updatedAt: "b", finishedAt: "c", giveUpAt: "d", failureReason: .insufficientFunds,
            cancelRequestedAt: "e", heldReason: .chargeMismatch, postings: []),
        Job(id: 42, idempotencyKey: "k", payment: Payment(amountMinor: Int64.max, currency: "EUR", debtor: "", creditor: ""),
            priority: 1000, maxAttempts: 1, state: .succeeded, attempt: 1, chargeID: "ch_42", createdAt: "x", updatedAt: "y",
            finishedAt: "z", postings: [posting, Job.Posting(side: "credit", account: "acct_2", amountMinor: 1999, currency: "EUR",
                                                              postedAt: "2026-12-05T07:40:35.123456Z")]),
    ]

    @Test(arguments: jobs) func writesWhatJSONEncoderWrites(_ job: Job) throws {
        let expected = try Self.encoder.encode(job)
        #expect(String(decoding: job.json, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(try JSONDecoder().decode(Job.self, from: Data(job.json)) == job)
    }

    /// json_agg's spacing, as the status read returns postings.
    @Test func readsPostingsAsPostgreSQLWritesThem() throws {
        let text = """
            [{"side" : "debit", "account" : "acct_1", "amount_minor" : 1999, "currency" : "EUR", "posted_at" : "2026-12-05T07:40:35.123456Z"}, \n \
            {"side" : "credit", "account" : "acct_2", "amount_minor" : 1999, "currency" : "EUR", "posted_at" : "2026-12-05T07:40:35.123456Z"}]
            """
        let objects = try #require(FlatJSON.objects(text.utf8))
        #expect(objects.compactMap(Job.Posting.init(fields:)) == (try JSONDecoder().decode([Job.Posting].self, from: Data(text.utf8))))
        #expect(FlatJSON.objects("[]".utf8)?.isEmpty == true)
        #expect(FlatJSON.objects(" [ { } ] ".utf8)?.count == 1)
        // Not sure of it: left to Foundation's decoder.
        for unsure in ["", "[", "[{}", "[{},]", "[1]", "{}", "[{\"a\": [1]}]", "[{\"a\": 1.5}]", "[{}] x", "[{\"a\":1,\"a\":2}]"] {
            #expect(FlatJSON.objects(unsure.utf8) == nil, "\(unsure)")
        }
        #expect(Job.Posting(fields: ["side": .string("debit")]) == nil)
    }
}
