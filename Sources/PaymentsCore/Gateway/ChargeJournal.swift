import Foundation

/// The file both gateways keep their accepted charges in: one JSON line per charge,
/// appended through O_APPEND (several processes may share it; a line written by one
/// write(2) lands whole at the end), read back at start. The proofs read it too.
public enum ChargeJournal {
    /// Opens `path` for appending and returns its descriptor with the charges already in
    /// it, reading the file once.
    static func open(_ path: String) throws -> (fd: Int32, records: [ChargeRecord]) {
        let fd = Foundation.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw PaymentsError.inputUnreadable(path: path, reason: "cannot open the gateway's charge journal: \(String(cString: strerror(errno)))")
        }
        let data = FileManager.default.contents(atPath: path) ?? Data()
        // A line torn by a crash mid-write is skipped when read; end it, so the next
        // record starts on a line of its own instead of being glued to the fragment.
        if let last = data.last, last != UInt8(ascii: "\n") {
            _ = write(fd: fd, Data([UInt8(ascii: "\n")]))
        }
        return (fd, decode(data))
    }

    /// Every readable charge in the journal at `path` (none if it does not exist).
    public static func read(_ path: String) throws -> [ChargeRecord] {
        decode(FileManager.default.contents(atPath: path) ?? Data())
    }

    static func decode(_ data: Data) -> [ChargeRecord] {
        let decoder = JSONDecoder()
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? decoder.decode(ChargeRecord.self, from: Data($0)) }
    }

    /// The records as journal lines, ready for one write.
    static func lines(_ records: some Sequence<ChargeRecord>) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        var data = Data()
        for record in records {
            data.append((try? encoder.encode(record)) ?? Data())
            data.append(UInt8(ascii: "\n"))
        }
        return data
    }

    /// Writes all of `data`, retrying short writes and EINTR.
    static func write(fd: Int32, _ data: Data) -> Result<Void, JournalError> {
        data.withUnsafeBytes { buffer -> Result<Void, JournalError> in
            var offset = 0
            while offset < buffer.count {
                let n = Foundation.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    return .failure(JournalError(reason: "write: \(String(cString: strerror(errno)))"))
                }
                offset += n
            }
            return .success(())
        }
    }
}

public struct JournalError: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { "the gateway's charge journal cannot be written (\(reason))" }
}
