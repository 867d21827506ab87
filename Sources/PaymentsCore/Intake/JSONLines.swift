import Foundation

/// Parses `enqueue --input` files: one payment object per line, in the API's body format
/// plus an `idempotency_key` field. Every bad line is reported; blank lines are skipped.
public enum JSONLinesParser {
    public struct Output: Sendable {
        public var payments: [NewPayment]
        public var errors: [LineError]
        /// Non-blank lines read.
        public var total: Int
        /// Lines that repeat an earlier line's key and payment: inserted once.
        public var repeatedInFile: Int
    }

    /// - Parameter keyPrefix: when set, a line without `idempotency_key` gets
    ///   `<prefix>-<line number>`, so re-running the same file inserts nothing twice.
    public static func parse(_ data: Data, currencies: Set<String>, keyPrefix: String? = nil) -> Output {
        var payments: [NewPayment] = []
        var errors: [LineError] = []
        var seen: [String: (line: Int, fingerprint: String)] = [:]
        var total = 0
        var repeated = 0
        var lineNumber = 0
        for rawLine in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = rawLine
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 }) { continue }
            total += 1
            guard line.count <= 64 * 1024 else {
                errors.append(.init(line: lineNumber, reason: "line is longer than 64 KiB"))
                continue
            }
            let json: JSONValue
            do {
                json = try JSONValue.parse(Data(line))
            } catch {
                errors.append(.init(line: lineNumber, reason: error.description))
                continue
            }
            let request: PaymentRequest
            switch PaymentRequest.validate(json, currencies: currencies, extraFields: ["idempotency_key"]) {
            case let .success(value): request = value
            case let .failure(error):
                errors.append(.init(line: lineNumber, reason: error.message))
                continue
            }
            let key: String
            if case let .object(object) = json, let value = object["idempotency_key"], value != .null {
                guard case let .string(text) = value, PaymentRequest.isValidIdempotencyKey(text) else {
                    errors.append(.init(line: lineNumber, reason: "idempotency_key must be a string of 1-255 printable ASCII characters"))
                    continue
                }
                key = text
            } else if let keyPrefix {
                key = "\(keyPrefix)-\(lineNumber)"
            } else {
                errors.append(.init(line: lineNumber, reason: "idempotency_key is required (or pass --key-prefix to derive keys from line numbers)"))
                continue
            }
            if let earlier = seen[key] {
                if earlier.fingerprint == request.fingerprint {
                    repeated += 1
                } else {
                    errors.append(.init(line: lineNumber, reason: "idempotency_key '\(key)' is used on line \(earlier.line) for a different payment"))
                }
                continue
            }
            seen[key] = (lineNumber, request.fingerprint)
            payments.append(NewPayment(idempotencyKey: key, request: request, line: lineNumber))
        }
        return Output(payments: payments, errors: errors, total: total, repeatedInFile: repeated)
    }
}
