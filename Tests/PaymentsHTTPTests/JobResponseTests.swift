import Foundation
import PaymentsCore
@testable import PaymentsHTTP
import Testing

/// Every body that shows a job shows it the same way: the status read's hand-written JSON
/// (`Job.json`) and the encoder the other answers use (a cancel's refusal, say) agree
/// byte for byte, slashes included.
@Suite struct JobResponseTests {
    @Test func theJobsJSONIsTheEncodersJSON() throws {
        let job = Job(id: 7, idempotencyKey: "order/42", payment: Payment(amountMinor: 500, currency: "EUR", debtor: "acct/1", creditor: "acct_2"),
                      priority: 100, maxAttempts: 5, state: .reconciling, attempt: 2, lastError: "gateway: 503 at /v1/charges\nretrying",
                      createdAt: "2026-12-05T08:00:00.000001Z", updatedAt: "2026-12-05T08:00:01.000001Z", postings: [])
        #expect(String(decoding: try JSONResponse.encoder.encode(job), as: UTF8.self) == String(decoding: job.json, as: UTF8.self))
    }
}

/// The read headers' own formatting, as Foundation prints it.
@Suite struct ReadHeaderFormatTests {
    @Test(arguments: [0, 0.0004, 0.0005, 0.004, 0.0125, 0.999, 0.9996, 1, 1.5, 12.3456, 3_600.25])
    func lagSecondsPrintAsFormatDoes(_ value: Double) {
        #expect(PaymentRoutes<FakePaymentsAPI>.seconds(value) == String(format: "%.3f", value))
    }
}
