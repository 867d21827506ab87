import Foundation

/// A validated request for one payment: the body of `POST /v1/payments` and one line of
/// `enqueue --input`: the payment and how to schedule it.
public struct PaymentRequest: Sendable, Equatable {
    public static let defaultPriority: Int16 = 100
    public static let defaultMaxAttempts: Int32 = 5
    public static let priorityRange: ClosedRange<Int16> = 0...1000
    public static let maxAttemptsRange: ClosedRange<Int32> = 1...50
    /// Larger than any real single payment; keeps sums far from Int64 overflow.
    public static let maxAmountMinor: Int64 = 1_000_000_000_000_000
    /// A payment's own retry budget, in seconds from its creation (default: the serving
    /// process's `--give-up-after`).
    public static let giveUpAfterRange: ClosedRange<Int32> = 1...604_800
    /// The retry budget of a payment that names none, unless the intake says otherwise
    /// (`--give-up-after` of serve and enqueue).
    public static let defaultGiveUpAfterSeconds: Int32 = 3600
    public static let fields: Set<String> = ["amount_minor", "currency", "debtor", "creditor", "priority", "max_attempts", "give_up_after_seconds"]

    public var payment: Payment
    /// Lower runs first.
    public var priority: Int16
    /// Attempts sent one after another before the worker stops and asks the gateway
    /// (reconciling) before any further one. Never a reason to fail: the budget is a time.
    public var maxAttempts: Int32
    /// The payment's own retry budget in seconds (nil: the server's `--give-up-after`).
    public var giveUpAfterSeconds: Int32?

    public init(payment: Payment, priority: Int16 = defaultPriority, maxAttempts: Int32 = defaultMaxAttempts, giveUpAfterSeconds: Int32? = nil) {
        self.payment = payment
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.giveUpAfterSeconds = giveUpAfterSeconds
    }

    public init(amountMinor: Int64, currency: String, debtor: String, creditor: String,
                priority: Int16 = defaultPriority, maxAttempts: Int32 = defaultMaxAttempts, giveUpAfterSeconds: Int32? = nil) {
        self.init(payment: Payment(amountMinor: amountMinor, currency: currency, debtor: debtor, creditor: creditor),
                  priority: priority, maxAttempts: maxAttempts, giveUpAfterSeconds: giveUpAfterSeconds)
    }

    /// The canonical form of the body: two requests are "the same payment" exactly when
    /// their fingerprints are equal (stored with the job to detect a reused key).
    public var fingerprint: String {
        // The budget only when given, so fingerprints stored before it existed still match.
        "\(payment.amountMinor)|\(payment.currency)|\(payment.debtor)|\(payment.creditor)|\(priority)|\(maxAttempts)"
            + (giveUpAfterSeconds.map { "|g\($0)" } ?? "")
    }

    /// The fingerprint a payment re-created from the provider's record carries (`payments
    /// reconcile --adopt`): the provider keeps the payment, not how it was scheduled, so it
    /// ends in `|*` and stands for any request for the same payment.
    public static func adoptedFingerprint(of payment: Payment) -> String {
        "\(payment.amountMinor)|\(payment.currency)|\(payment.debtor)|\(payment.creditor)|*"
    }

    /// Whether this request is the one whose fingerprint is `stored` (or, for an adopted
    /// payment, any request for the same payment): a retry gets the payment, not a 409.
    public func matches(storedFingerprint stored: String) -> Bool {
        if stored.hasSuffix("|*") { return fingerprint.hasPrefix(stored.dropLast()) }
        return stored == fingerprint
    }

    public static func isValidAccount(_ value: String) -> Bool {
        guard (1...64).contains(value.utf8.count) else { return false }
        return value.utf8.allSatisfy { c in
            (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x5F || c == 0x2E || c == 0x3A || c == 0x2D  // _ . : -
        }
    }

    public static func isValidIdempotencyKey(_ value: String) -> Bool {
        (1...255).contains(value.utf8.count) && value.unicodeScalars.allSatisfy { $0.value >= 0x21 && $0.value <= 0x7E }
    }

    /// Validates a decoded JSON object. `extraFields` are accepted besides the body's own
    /// (for example `idempotency_key` in JSON Lines input).
    public static func validate(_ json: JSONValue, currencies: Set<String>, extraFields: Set<String> = []) -> Result<PaymentRequest, PaymentValidationError> {
        guard case let .object(object) = json else {
            return .failure(.init(code: "invalid_body", field: nil, message: "expected a JSON object, got \(json.typeName)"))
        }
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) && !extraFields.contains($0) }) {
            return .failure(.init(code: "unknown_field", field: unknown, message: "unknown field '\(unknown)'"))
        }
        func integer(_ name: String, required: Bool) -> Result<Int64?, PaymentValidationError> {
            switch object[name] {
            case nil, .null?:
                return required ? .failure(.init(code: "missing_field", field: name, message: "\(name) is required")) : .success(nil)
            case let .integer(v)?: return .success(v)
            case let other?:
                return .failure(.init(code: "invalid_field", field: name, message: "\(name) must be an integer, got \(other.typeName)"))
            }
        }
        func string(_ name: String) -> Result<String, PaymentValidationError> {
            switch object[name] {
            case nil, .null?: return .failure(.init(code: "missing_field", field: name, message: "\(name) is required"))
            case let .string(v)?: return .success(v)
            case let other?: return .failure(.init(code: "invalid_field", field: name, message: "\(name) must be a string, got \(other.typeName)"))
            }
        }
        do {
            guard let amount = try integer("amount_minor", required: true).get() else {
                throw PaymentValidationError(code: "missing_field", field: "amount_minor", message: "amount_minor is required")
            }
            guard amount > 0 else {
                throw PaymentValidationError(code: "invalid_amount", field: "amount_minor", message: "amount_minor must be greater than 0 (minor units, e.g. cents), got \(amount)")
            }
            guard amount <= maxAmountMinor else {
                throw PaymentValidationError(code: "invalid_amount", field: "amount_minor", message: "amount_minor must be at most \(maxAmountMinor)")
            }
            let currency = try string("currency").get()
            guard currencies.contains(currency) else {
                throw PaymentValidationError(code: "invalid_currency", field: "currency", message: "currency '\(currency.prefix(16))' is not a supported ISO 4217 code (upper case, e.g. EUR)")
            }
            let debtor = try string("debtor").get()
            guard isValidAccount(debtor) else {
                throw PaymentValidationError(code: "invalid_account", field: "debtor", message: "debtor must be 1-64 characters of A-Z a-z 0-9 _ . : -")
            }
            let creditor = try string("creditor").get()
            guard isValidAccount(creditor) else {
                throw PaymentValidationError(code: "invalid_account", field: "creditor", message: "creditor must be 1-64 characters of A-Z a-z 0-9 _ . : -")
            }
            guard debtor != creditor else {
                throw PaymentValidationError(code: "invalid_account", field: "creditor", message: "debtor and creditor must differ")
            }
            let priority = try integer("priority", required: false).get() ?? Int64(defaultPriority)
            guard priority >= Int64(priorityRange.lowerBound), priority <= Int64(priorityRange.upperBound) else {
                throw PaymentValidationError(code: "invalid_field", field: "priority", message: "priority must be from \(priorityRange.lowerBound) (first) to \(priorityRange.upperBound)")
            }
            let maxAttempts = try integer("max_attempts", required: false).get() ?? Int64(defaultMaxAttempts)
            guard maxAttempts >= Int64(maxAttemptsRange.lowerBound), maxAttempts <= Int64(maxAttemptsRange.upperBound) else {
                throw PaymentValidationError(code: "invalid_field", field: "max_attempts", message: "max_attempts must be from \(maxAttemptsRange.lowerBound) to \(maxAttemptsRange.upperBound)")
            }
            let giveUpAfter = try integer("give_up_after_seconds", required: false).get()
            if let giveUpAfter {
                guard giveUpAfter >= Int64(giveUpAfterRange.lowerBound), giveUpAfter <= Int64(giveUpAfterRange.upperBound) else {
                    throw PaymentValidationError(code: "invalid_field", field: "give_up_after_seconds",
                                                 message: "give_up_after_seconds must be from \(giveUpAfterRange.lowerBound) to \(giveUpAfterRange.upperBound) (7 days)")
                }
            }
            return .success(PaymentRequest(amountMinor: amount, currency: currency, debtor: debtor, creditor: creditor,
                                           priority: Int16(priority), maxAttempts: Int32(maxAttempts),
                                           giveUpAfterSeconds: giveUpAfter.map { Int32($0) }))
        } catch let error as PaymentValidationError {
            return .failure(error)
        } catch {
            return .failure(.init(code: "invalid_body", field: nil, message: "\(error)"))
        }
    }
}
