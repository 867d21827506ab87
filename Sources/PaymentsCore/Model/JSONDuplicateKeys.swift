import Foundation

/// Finds a key that appears twice in one JSON object. Foundation's decoder silently
/// keeps one of the values; a payment body must not mean two things. Expects text that
/// already parsed as JSON; keys are compared after unescaping ("a\u0062" is "ab").
enum JSONDuplicateKeys {
    static func first(in data: Data) -> String? {
        let bytes = [UInt8](data)
        // One entry per open container: the keys seen so far for an object (nil for an
        // array), and whether the next string in that object is a key.
        var stack: [(keys: Set<String>?, expectingKey: Bool)] = []
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"):
                stack.append((keys: [], expectingKey: true))
            case UInt8(ascii: "["):
                stack.append((keys: nil, expectingKey: false))
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                _ = stack.popLast()
            case UInt8(ascii: ","):
                if let last = stack.indices.last, stack[last].keys != nil { stack[last].expectingKey = true }
            case UInt8(ascii: "\""):
                let (text, end) = string(bytes, from: i + 1)
                i = end
                if let last = stack.indices.last, stack[last].expectingKey, var keys = stack[last].keys {
                    if !keys.insert(text).inserted { return text }
                    stack[last] = (keys: keys, expectingKey: false)
                }
            default:
                break
            }
            i += 1
        }
        return nil
    }

    /// Decodes the string starting after its opening quote; returns it and the index of
    /// its closing quote.
    private static func string(_ bytes: [UInt8], from start: Int) -> (String, Int) {
        var units: [UInt16] = []
        var raw: [UInt8] = []
        var i = start
        func flushRaw() {
            units.append(contentsOf: String(decoding: raw, as: UTF8.self).utf16)
            raw.removeAll()
        }
        while i < bytes.count, bytes[i] != UInt8(ascii: "\"") {
            guard bytes[i] == UInt8(ascii: "\\"), i + 1 < bytes.count else { raw.append(bytes[i]); i += 1; continue }
            flushRaw()
            let escaped = bytes[i + 1]
            i += 2
            switch escaped {
            case UInt8(ascii: "u"):
                let hex = String(decoding: bytes[i..<min(i + 4, bytes.count)], as: UTF8.self)
                units.append(UInt16(hex, radix: 16) ?? 0xFFFD)
                i += 4
            case UInt8(ascii: "n"): units.append(0x0A)
            case UInt8(ascii: "t"): units.append(0x09)
            case UInt8(ascii: "r"): units.append(0x0D)
            case UInt8(ascii: "b"): units.append(0x08)
            case UInt8(ascii: "f"): units.append(0x0C)
            default: units.append(UInt16(escaped))  // \" \\ \/
            }
        }
        flushRaw()
        return (String(decoding: units, as: UTF16.self), i)
    }
}
