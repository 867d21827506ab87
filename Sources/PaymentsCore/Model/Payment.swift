/// The money movement itself: who pays whom, how much, in which currency. Every type
/// that carries a payment (a request, a claimed job, a charge, the API's view of a job)
/// nests this one instead of repeating its fields.
public struct Payment: Sendable, Equatable, Hashable, Codable {
    /// Minor units (cents), always > 0.
    public var amountMinor: Int64
    /// ISO 4217, upper case; the `currencies` table is the list of accepted codes.
    public var currency: String
    public var debtor: String
    public var creditor: String

    public init(amountMinor: Int64, currency: String, debtor: String, creditor: String) {
        self.amountMinor = amountMinor
        self.currency = currency
        self.debtor = debtor
        self.creditor = creditor
    }

    enum CodingKeys: String, CodingKey {
        case currency, debtor, creditor
        case amountMinor = "amount_minor"
    }
}
