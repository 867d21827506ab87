import Foundation
import Testing
import PaymentsCore

@Suite struct PaymentRequestTests {
    let currencies: Set<String> = ["EUR", "USD", "JPY"]

    func validate(_ json: String) -> Result<PaymentRequest, PaymentValidationError> {
        guard let value = try? JSONValue.parse(Data(json.utf8)) else {
            return .failure(PaymentValidationError(code: "invalid_json", field: nil, message: "malformed JSON"))
        }
        return PaymentRequest.validate(value, currencies: currencies)
    }

    @Test func acceptsAValidBodyWithDefaults() throws {
        let request = try validate(#"{"amount_minor": 1234, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#).get()
        #expect(request == PaymentRequest(amountMinor: 1234, currency: "EUR", debtor: "acct_1", creditor: "acct_2"))
        #expect(request.priority == 100)
        #expect(request.maxAttempts == 5)
        #expect(request.fingerprint == "1234|EUR|acct_1|acct_2|100|5")
    }

    @Test(arguments: [
        (#"[]"#, "invalid_body"),
        (#"{"currency": "EUR", "debtor": "a", "creditor": "b"}"#, "missing_field"),
        (#"{"amount_minor": 0, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_amount"),
        (#"{"amount_minor": -5, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_amount"),
        (#"{"amount_minor": 1.5, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_field"),
        (#"{"amount_minor": "12", "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_field"),
        (#"{"amount_minor": 1e30, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_field"),
        (#"{"amount_minor": 12, "currency": "eur", "debtor": "a", "creditor": "b"}"#, "invalid_currency"),
        (#"{"amount_minor": 12, "currency": "XXX", "debtor": "a", "creditor": "b"}"#, "invalid_currency"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a b", "creditor": "b"}"#, "invalid_account"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a", "creditor": "a"}"#, "invalid_account"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a", "creditor": "b", "priority": 5000}"#, "invalid_field"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a", "creditor": "b", "max_attempts": 0}"#, "invalid_field"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a", "creditor": "b", "extra": 1}"#, "unknown_field"),
    ])
    func refusesBadBodies(_ json: String, _ code: String) {
        switch validate(json) {
        case .success: Issue.record("accepted \(json)")
        case let .failure(error): #expect(error.code == code, "\(json): \(error.message)")
        }
    }

    @Test func accountsAndKeys() {
        #expect(PaymentRequest.isValidAccount("acct_1:x.y-z"))
        #expect(!PaymentRequest.isValidAccount(""))
        #expect(!PaymentRequest.isValidAccount(String(repeating: "a", count: 65)))
        #expect(!PaymentRequest.isValidAccount("ünïcode"))
        #expect(PaymentRequest.isValidIdempotencyKey("order-42"))
        #expect(!PaymentRequest.isValidIdempotencyKey("has space"))
        #expect(!PaymentRequest.isValidIdempotencyKey(""))
    }
}

@Suite struct JSONLinesParserTests {
    let currencies: Set<String> = ["EUR", "USD"]

    @Test func reportsEveryBadLineWithItsNumber() {
        let input = """
            {"idempotency_key": "k1", "amount_minor": 100, "currency": "EUR", "debtor": "a", "creditor": "b"}
            not json

            {"idempotency_key": "k2", "amount_minor": -1, "currency": "EUR", "debtor": "a", "creditor": "b"}
            {"amount_minor": 100, "currency": "EUR", "debtor": "a", "creditor": "b"}
            {"idempotency_key": "k1", "amount_minor": 999, "currency": "EUR", "debtor": "a", "creditor": "b"}
            {"idempotency_key": "k1", "amount_minor": 100, "currency": "EUR", "debtor": "a", "creditor": "b"}
            """
        let out = JSONLinesParser.parse(Data(input.utf8), currencies: currencies)
        #expect(out.total == 6)
        #expect(out.errors.map(\.line) == [2, 4, 5, 6])
        #expect(out.errors[0].reason == "malformed JSON")
        #expect(out.errors[1].reason.contains("amount_minor"))
        #expect(out.errors[2].reason.contains("idempotency_key is required"))
        #expect(out.errors[3].reason.contains("line 1"))
        #expect(out.payments.map(\.idempotencyKey) == ["k1"])
        #expect(out.repeatedInFile == 1)
    }

    @Test func derivesKeysFromLineNumbersWithAPrefix() {
        let input = "{\"amount_minor\": 1, \"currency\": \"USD\", \"debtor\": \"a\", \"creditor\": \"b\"}\r\n\n{\"amount_minor\": 2, \"currency\": \"USD\", \"debtor\": \"a\", \"creditor\": \"b\"}"
        let out = JSONLinesParser.parse(Data(input.utf8), currencies: currencies, keyPrefix: "batch7")
        #expect(out.errors.isEmpty)
        #expect(out.payments.map(\.idempotencyKey) == ["batch7-1", "batch7-3"])
    }

    @Test func survivesGarbage() {
        var random = SeededRandom(seed: 7)
        for _ in 0..<200 {
            let bytes = (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            let out = JSONLinesParser.parse(Data(bytes), currencies: currencies)
            #expect(out.payments.count + out.errors.count <= out.total)
        }
    }
}

@Suite struct GeneratorTests {
    @Test func generatedJobsAreValidAndReproducible() {
        var a = JobGenerator(keyPrefix: "p", seed: 1)
        var b = JobGenerator(keyPrefix: "p", seed: 1)
        let currencies: Set<String> = ["EUR", "USD", "GBP", "CHF", "SEK", "PLN", "JPY"]
        for i in 0..<2_000 {
            let job = a.make(index: i)
            #expect(job == b.make(index: i))
            #expect(job.idempotencyKey == "p-\(i)")
            #expect(job.request.payment.amountMinor > 0)
            #expect(currencies.contains(job.request.payment.currency))
            #expect(job.request.payment.debtor != job.request.payment.creditor)
            #expect(PaymentRequest.isValidAccount(job.request.payment.debtor))
        }
    }

    @Test func stableDrawsPerKey() {
        #expect(SeededRandom.unit(for: "k", seed: 1) == SeededRandom.unit(for: "k", seed: 1))
        #expect(SeededRandom.unit(for: "k", seed: 1) != SeededRandom.unit(for: "k", seed: 2))
        var random = SeededRandom(seed: 3)
        let draws = (0..<10_000).map { _ in random.unit() }
        #expect(draws.allSatisfy { $0 >= 0 && $0 < 1 })
        let mean = draws.reduce(0, +) / Double(draws.count)
        #expect(abs(mean - 0.5) < 0.02)
    }

    @Test func migrationFileNames() {
        #expect(Migration(fileName: "0002_payment_jobs.sql", sql: "x")?.version == "0002")
        #expect(Migration(fileName: "payment_jobs.sql", sql: "x") == nil)
        #expect(Migration(fileName: "0002_payment_jobs.txt", sql: "x") == nil)
    }
}

@Suite struct JSONDuplicateFieldTests {
    /// Defect: `{"amount_minor":100,"amount_minor":200}` was accepted with one of the
    /// values; a proxy in front may read the other. Such a body is refused.
    @Test(arguments: [
        #"{"amount_minor": 100, "amount_minor": 200}"#,
        #"{"a": 1, "b": {"c": 1, "c": 2}}"#,
        #"{"a\u0062": 1, "ab": 2}"#,
        #"[{"x": 1}, {"y": [1, {"z": 1, "z": 1}]}]"#,
    ])
    func duplicateFieldsAreRefused(_ json: String) {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue.parse(Data(json.utf8)) }
    }

    @Test(arguments: [
        #"{"a": 1, "b": {"a": 1}}"#,
        #"[{"a": 1}, {"a": 2}]"#,
        #"{"a": "\"a\": 1, \"a\": 2", "b": "{\"b\": 1}"}"#,
        #"{"é": 1, "e": 2, "x\\": 3, "x": 4}"#,
    ])
    func sameNamesInDifferentObjectsOrStringsAreFine(_ json: String) throws {
        _ = try JSONValue.parse(Data(json.utf8))
    }

    @Test func aJSONLinesLineWithADuplicateFieldIsReported() {
        let line = #"{"idempotency_key": "k", "amount_minor": 1, "amount_minor": 2, "currency": "EUR", "debtor": "a", "creditor": "b"}"#
        let parsed = JSONLinesParser.parse(Data(line.utf8), currencies: ["EUR"])
        #expect(parsed.payments.isEmpty)
        #expect(parsed.errors.first?.reason.contains("field 'amount_minor' appears twice") == true, "\(parsed.errors)")
    }
}
