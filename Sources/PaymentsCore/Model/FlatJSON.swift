/// One flat JSON object (string keys, scalar values), read and written without Foundation.
///
/// Every body on the charge path is one: the payment sent to the gateway, the charge it
/// answers, a payment POSTed to the API. Foundation's JSONDecoder into `JSONValue`, and
/// the duplicate-key scan after it, took a fifth of the gateway's CPU per charge (perf,
/// 2026-12-04). `object(_:)` answers only what it is sure of, exactly as the general path
/// would: anything else (nesting, fractions, exponents, integers beyond Int64, invalid
/// text, duplicate keys) returns nil and goes to `JSONValue.parse`'s general path, which
/// keeps its errors.
public enum FlatJSON {
    public static func object(_ bytes: some Collection<UInt8>) -> [String: JSONValue]? {
        var reader = Reader()
        return bytes.withContiguousStorageIfAvailable { reader.object($0) } ?? reader.object(Array(bytes).withUnsafeBufferPointer { $0 })
    }

    /// `[{...}, ...]`: an array of flat objects (the status read's postings, as
    /// PostgreSQL's json_agg writes them), or nil for anything else, as `object(_:)`.
    public static func objects(_ bytes: some Collection<UInt8>) -> [[String: JSONValue]]? {
        var reader = Reader()
        return bytes.withContiguousStorageIfAvailable { reader.objects($0) } ?? reader.objects(Array(bytes).withUnsafeBufferPointer { $0 })
    }

    /// A scalar value to write.
    public enum Value: Sendable {
        case string(String), integer(Int64), bool(Bool)
    }

    /// `{"k": v, ...}` in the order given (callers give sorted keys, as JSONResponse writes).
    public static func encode(_ fields: KeyValuePairs<String, Value?>) -> [UInt8] {
        var out: [UInt8] = [UInt8(ascii: "{")]
        out.reserveCapacity(160)
        var first = true
        for case let (key, value?) in fields {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            JSONObjectWriter.appendString(key, to: &out)
            out.append(UInt8(ascii: ":"))
            switch value {
            case let .string(s): JSONObjectWriter.appendString(s, to: &out)
            case let .integer(n): out.append(contentsOf: String(n).utf8)
            case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
            }
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    private struct Reader {
        var i = 0

        mutating func object(_ b: UnsafeBufferPointer<UInt8>) -> [String: JSONValue]? {
            guard let result = members(b), end(b) else { return nil }
            return result
        }

        mutating func objects(_ b: UnsafeBufferPointer<UInt8>) -> [[String: JSONValue]]? {
            skipSpace(b)
            guard take(b, UInt8(ascii: "[")) else { return nil }
            var result: [[String: JSONValue]] = []
            skipSpace(b)
            if take(b, UInt8(ascii: "]")) { return end(b) ? result : nil }
            while true {
                guard let object = members(b) else { return nil }
                result.append(object)
                skipSpace(b)
                if take(b, UInt8(ascii: ",")) { continue }
                guard take(b, UInt8(ascii: "]")) else { return nil }
                return end(b) ? result : nil
            }
        }

        /// One flat object, up to its closing brace.
        mutating func members(_ b: UnsafeBufferPointer<UInt8>) -> [String: JSONValue]? {
            skipSpace(b)
            guard take(b, UInt8(ascii: "{")) else { return nil }
            var result: [String: JSONValue] = [:]
            skipSpace(b)
            if take(b, UInt8(ascii: "}")) { return result }
            while true {
                skipSpace(b)
                guard take(b, UInt8(ascii: "\"")), let key = string(b) else { return nil }
                skipSpace(b)
                guard take(b, UInt8(ascii: ":")) else { return nil }
                skipSpace(b)
                guard let value = scalar(b), result.updateValue(value, forKey: key) == nil else { return nil }
                skipSpace(b)
                if take(b, UInt8(ascii: ",")) { continue }
                guard take(b, UInt8(ascii: "}")) else { return nil }
                return result
            }
        }

        mutating func end(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
            skipSpace(b)
            return i == b.count
        }

        mutating func skipSpace(_ b: UnsafeBufferPointer<UInt8>) {
            while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
        }

        mutating func take(_ b: UnsafeBufferPointer<UInt8>, _ byte: UInt8) -> Bool {
            guard i < b.count, b[i] == byte else { return false }
            i += 1
            return true
        }

        mutating func literal(_ b: UnsafeBufferPointer<UInt8>, _ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard i + n <= b.count else { return false }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { return false }
            i += n
            return true
        }

        mutating func scalar(_ b: UnsafeBufferPointer<UInt8>) -> JSONValue? {
            guard i < b.count else { return nil }
            switch b[i] {
            case UInt8(ascii: "\""):
                i += 1
                return string(b).map(JSONValue.string)
            case UInt8(ascii: "t"): return literal(b, "true") ? .bool(true) : nil
            case UInt8(ascii: "f"): return literal(b, "false") ? .bool(false) : nil
            case UInt8(ascii: "n"): return literal(b, "null") ? .null : nil
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return integer(b).map(JSONValue.integer)
            default: return nil
            }
        }

        /// -?(0|[1-9][0-9]*) within Int64, not followed by a fraction or an exponent.
        mutating func integer(_ b: UnsafeBufferPointer<UInt8>) -> Int64? {
            let negative = take(b, UInt8(ascii: "-"))
            let start = i
            var magnitude: UInt64 = 0
            while i < b.count, b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") {
                let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (s, o2) = m.addingReportingOverflow(UInt64(b[i] - UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                magnitude = s
                i += 1
            }
            let digits = i - start
            guard digits > 0, !(digits > 1 && b[start] == UInt8(ascii: "0")) else { return nil }
            if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") { return nil }
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
                return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
            }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return Int64(magnitude)
        }

        /// The string after its opening quote, unescaped; nil for anything JSON forbids
        /// (control characters, bad escapes, lone surrogates, invalid UTF-8).
        mutating func string(_ b: UnsafeBufferPointer<UInt8>) -> String? {
            let start = i
            // The common case: no escapes.
            while i < b.count, b[i] != UInt8(ascii: "\""), b[i] != UInt8(ascii: "\\"), b[i] >= 0x20 { i += 1 }
            guard i < b.count else { return nil }
            if b[i] == UInt8(ascii: "\"") {
                defer { i += 1 }
                return String(validating: UnsafeBufferPointer(rebasing: b[start..<i]), as: UTF8.self)
            }
            var bytes = Array(b[start..<i])
            while i < b.count {
                let c = b[i]
                i += 1
                switch c {
                case UInt8(ascii: "\""): return String(validating: bytes, as: UTF8.self)
                case 0..<0x20: return nil
                case UInt8(ascii: "\\"):
                    guard i < b.count else { return nil }
                    let e = b[i]
                    i += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(e)
                    case UInt8(ascii: "b"): bytes.append(0x08)
                    case UInt8(ascii: "f"): bytes.append(0x0C)
                    case UInt8(ascii: "n"): bytes.append(0x0A)
                    case UInt8(ascii: "r"): bytes.append(0x0D)
                    case UInt8(ascii: "t"): bytes.append(0x09)
                    case UInt8(ascii: "u"):
                        guard var scalar = hex4(b) else { return nil }
                        if (0xD800...0xDBFF).contains(scalar) {
                            guard take(b, UInt8(ascii: "\\")), take(b, UInt8(ascii: "u")), let low = hex4(b), (0xDC00...0xDFFF).contains(low) else { return nil }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00...0xDFFF).contains(scalar) {
                            return nil
                        }
                        guard let u = Unicode.Scalar(scalar) else { return nil }
                        bytes.append(contentsOf: String(Character(u)).utf8)
                    default: return nil
                    }
                default: bytes.append(c)
                }
            }
            return nil
        }

        mutating func hex4(_ b: UnsafeBufferPointer<UInt8>) -> UInt32? {
            guard i + 4 <= b.count else { return nil }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = b[i]
                i += 1
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = v << 4 | UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = v << 4 | UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): v = v << 4 | UInt32(c - UInt8(ascii: "A") + 10)
                default: return nil
                }
            }
            return v
        }
    }
}
