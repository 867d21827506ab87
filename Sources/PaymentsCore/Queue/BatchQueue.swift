import Synchronization

/// A multi-producer queue drained in batches by a few consumers: job tasks append their
/// completions, completers take everything pending in one go (one statement per batch).
public final class BatchQueue<Element: Sendable>: Sendable {
    private struct State {
        var items: [Element] = []
        var waiters: [CheckedContinuation<Void, Never>] = []
        var closed = false
    }
    private let state = Mutex(State())

    public init() {}

    public func append(_ element: Element) { append(contentsOf: CollectionOfOne(element)) }

    /// Appends after `close` are still taken before nil (the completer parks outcomes still
    /// waiting on a row lock back into its closed queue while draining it).
    public func append(contentsOf elements: some Collection<Element>) {
        guard !elements.isEmpty else { return }
        let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
            s.items.append(contentsOf: elements)
            return s.waiters.isEmpty ? nil : s.waiters.removeFirst()
        }
        waiter?.resume()
    }

    /// No more appends; consumers drain what is left, then get nil.
    public func close() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.closed = true
            defer { s.waiters.removeAll() }
            return s.waiters
        }
        waiters.forEach { $0.resume() }
    }

    public var count: Int { state.withLock { $0.items.count } }

    /// Up to `max` items, waiting while there are none; nil once closed and empty.
    public func take(max: Int) async -> [Element]? {
        while true {
            let batch = state.withLock { s -> [Element]?? in
                if !s.items.isEmpty {
                    let n = min(max, s.items.count)
                    defer { s.items.removeFirst(n) }
                    return .some(Array(s.items.prefix(n)))
                }
                return s.closed ? .some(nil) : nil
            }
            if let batch { return batch }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { s -> Bool in
                    if !s.items.isEmpty || s.closed { return true }
                    s.waiters.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }
}
