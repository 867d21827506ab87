import Foundation
import Synchronization

/// A progress bar on a terminal (count, rate, ETA), plain lines otherwise, at most a few
/// updates a second so drawing never slows the work down.
final class ProgressDisplay: Sendable {
    private let label: String
    private let isTerminal: Bool
    private let lastDraw = Mutex<ContinuousClock.Instant?>(nil)
    private let interval: Duration

    init(label: String) {
        self.label = label
        self.isTerminal = isatty(STDERR_FILENO) == 1
        self.interval = isatty(STDERR_FILENO) == 1 ? .milliseconds(100) : .seconds(1)
    }

    func update(done: Int, total: Int, elapsed: Duration, force: Bool = false) {
        let now = ContinuousClock.now
        let draw = lastDraw.withLock { last -> Bool in
            if !force, let last, now - last < interval { return false }
            last = now
            return true
        }
        guard draw else { return }
        let seconds = max(elapsed.seconds, 0.001)
        let rate = Double(done) / seconds
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line: String
        if isTerminal {
            let width = 30
            let filled = total > 0 ? min(width, width * done / total) : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            line = "\r\(label) [\(bar)] \(done.grouped)/\(total.grouped)  \(Int(rate).grouped)/s  ETA \(String(format: "%.1f", eta))s "
        } else {
            line = "\(label): \(done.grouped)/\(total.grouped) (\(Int(rate).grouped)/s, ETA \(String(format: "%.1f", eta))s)\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }

    func finish() {
        if isTerminal { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}

extension Int {
    /// 12345678 -> "12,345,678"
    var grouped: String {
        let digits = String(self.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return self < 0 ? "-" + out : out
    }
}
