import Foundation

/// Realistic synthetic payments for `enqueue --count`: a few currencies weighted as a
/// European processor would see them, amounts spread over four orders of magnitude,
/// 100,000 accounts, one payment in ten urgent.
public struct JobGenerator: Sendable {
    static let currencies: [(code: String, weight: Double)] = [
        ("EUR", 0.40), ("USD", 0.25), ("GBP", 0.15), ("CHF", 0.06), ("SEK", 0.05), ("PLN", 0.05), ("JPY", 0.04),
    ]
    public let keyPrefix: String
    private var random: SeededRandom

    public init(keyPrefix: String, seed: UInt64) {
        self.keyPrefix = keyPrefix
        self.random = SeededRandom(seed: seed)
    }

    public mutating func make(index: Int) -> NewPayment {
        var pick = random.unit()
        var currency = Self.currencies[0].code
        for entry in Self.currencies {
            if pick < entry.weight { currency = entry.code; break }
            pick -= entry.weight
        }
        // Log-uniform from 1.00 to 10,000.00 in minor units.
        let amount = Int64((100.0 * pow(10.0, random.unit() * 4)).rounded())
        let debtor = Int(random.next() % 100_000)
        var creditor = Int(random.next() % 100_000)
        if creditor == debtor { creditor = (creditor + 1) % 100_000 }
        let priority: Int16 = random.unit() < 0.1 ? 10 : PaymentRequest.defaultPriority
        let request = PaymentRequest(
            amountMinor: max(1, amount), currency: currency,
            debtor: "acct_\(debtor)", creditor: "acct_\(creditor)",
            priority: priority, maxAttempts: PaymentRequest.defaultMaxAttempts)
        return NewPayment(idempotencyKey: "\(keyPrefix)-\(index)", request: request)
    }

}
