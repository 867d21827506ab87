import PaymentsCore
import Foundation

/// The file a gateway keeps its accepted charges in: one JSON line per charge, appended
/// through O_APPEND by the one process holding its lock, read back at start. The proofs
/// read it too (without the lock: they only read).
public enum ChargeJournal {
    /// Opens `path` for appending, alone: the descriptor holds an exclusive lock for the
    /// life of the process (two gateways on one journal would each deduplicate alone and
    /// charge a key twice). Returns the charges already in it. A torn last line (a crash
    /// mid-write, before its fsync returned, so never acknowledged) is cut off; any other
    /// unreadable line stops the start with its line number: skipping it would make its key
    /// chargeable again.
    static func open(_ path: String) throws -> (fd: Int32, records: [ChargeRecord]) {
        let fd = Foundation.open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw PaymentsError.inputUnreadable(path: path, reason: "cannot open the gateway's charge journal: \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno == EWOULDBLOCK ? "it is in use by another gateway process (one journal, one gateway)" : String(cString: strerror(errno))
            close(fd)
            throw PaymentsError.inputUnreadable(path: path, reason: "cannot lock the gateway's charge journal: \(reason)")
        }
        do {
            var data = FileManager.default.contents(atPath: path) ?? Data()
            let parsed = try decode(data, path: path)
            if parsed.tornTail > 0 {
                data.removeLast(parsed.tornTail)
                guard ftruncate(fd, off_t(data.count)) == 0 else {
                    throw PaymentsError.inputUnreadable(path: path, reason: "cannot cut the journal's torn last line: \(String(cString: strerror(errno)))")
                }
            }
            return (fd, parsed.records)
        } catch {
            close(fd)
            throw error
        }
    }

    /// Every charge in the journal at `path` (none if it does not exist), in its latest
    /// state: a refund line replaces the charge it refunds. Any other line is a charge of
    /// its own, a repeated one included (the proofs count it as a key charged twice). A
    /// damaged line other than a torn last one (a write under way, or a crash mid-write)
    /// throws.
    public static func read(_ path: String) throws -> [ChargeRecord] {
        let lines = try decode(FileManager.default.contents(atPath: path) ?? Data(), path: path).records
        var records: [ChargeRecord] = []
        var unrefunded: [String: Int] = [:]  // key and charge id -> its index in records
        for record in lines {
            let id = "\(record.key)\u{0}\(record.chargeID)"
            if record.isRefunded, let index = unrefunded.removeValue(forKey: id) {
                records[index] = record
                continue
            }
            if !record.isRefunded { unrefunded[id] = records.count }
            records.append(record)
        }
        return records
    }

    /// The records, and how many bytes at the end are a torn last line (no newline yet).
    static func decode(_ data: Data, path: String) throws -> (records: [ChargeRecord], tornTail: Int) {
        let decoder = JSONDecoder()
        var records: [ChargeRecord] = []
        var lineStart = data.startIndex
        var number = 0
        while lineStart < data.endIndex {
            number += 1
            guard let newline = data[lineStart...].firstIndex(of: UInt8(ascii: "\n")) else {
                // No newline: the last write did not finish. Only this line may be torn.
                return (records, data.endIndex - lineStart)
            }
            let line = data[lineStart..<newline]
            lineStart = newline + 1
            if line.isEmpty { continue }
            guard let record = try? decoder.decode(ChargeRecord.self, from: Data(line)) else {
                throw PaymentsError.inputUnreadable(path: path, reason: "the gateway's charge journal is damaged at line \(number) (not a charge record); every key it names could be charged again, so nothing starts on it: restore the journal, or repair that line by hand")
            }
            records.append(record)
        }
        return (records, 0)
    }

    /// Records' JSON (`ChargeRecord.json`) as journal lines, ready for one write.
    static func lines(_ jsons: some Collection<[UInt8]>) -> Data {
        var data = Data(capacity: jsons.reduce(0) { $0 + $1.count + 1 })
        for json in jsons {
            data.append(contentsOf: json)
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
