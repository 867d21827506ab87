import Foundation

/// The one line `payments bench` keeps up to date on standard error while it runs (a
/// terminal only; elsewhere each phase's start is a line of its own).
final class Progress: Sendable {
    let terminal = isatty(STDERR_FILENO) == 1
    let started = ContinuousClock.now

    func phase(_ name: String) {
        write("== \(name)", newline: true)
    }

    func update(_ text: String) {
        guard terminal else { return }
        write("   \(text)", newline: false)
    }

    func done() {
        write("== done in \(Int((ContinuousClock.now - started).components.seconds)) s", newline: true)
    }

    private func write(_ text: String, newline: Bool) {
        let elapsed = Int((ContinuousClock.now - started).components.seconds)
        let line = terminal ? "\r\u{1B}[K[\(elapsed) s] \(text)\(newline ? "\n" : "")" : "[\(elapsed) s] \(text)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}
