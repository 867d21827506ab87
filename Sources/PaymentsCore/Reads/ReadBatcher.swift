import PostgresNIO
import Synchronization

/// Gathers concurrent reads of single payments into one statement
/// (`payment_status_batch`). Through transaction pooling every statement pays a round
/// trip through HAProxy and the pooler, a parse and a bind, whatever it returns; at load,
/// the reads that arrive while a batch is in flight go together in the next one. No read
/// waits for company: with a batch slot free, a read leaves at once, alone if it is alone.
final class ReadBatcher: Sendable {
    struct Read: Sendable {
        let id: Int64
        let token: String?
        let continuation: CheckedContinuation<Routed<Job?>, any Error>
        let arrived: ContinuousClock.Instant
    }

    private struct State {
        var waiting: [Read] = []
        var batchesInFlight = 0
    }

    let router: ReadRouter
    /// Batches in flight at once: few enough that reads gather, enough that a slow batch
    /// does not hold the rest. Two, measured (payments bench, 64 connections, 2026-12-06):
    /// 9,231-9,385 reads/s with 8, 9,867-10,780 with 4, 11,932-12,184 with 2; with more,
    /// each statement carries fewer reads and costs the same.
    let maxBatches: Int
    /// The most reads in one statement.
    let maxBatchSize: Int
    /// The most reads waiting for a batch: past it a read fails at once (the read path is
    /// not keeping up, as when it stalls and each batch waits out the timeout).
    let maxWaiting: Int
    private let state = Mutex(State())

    init(router: ReadRouter, maxBatches: Int = 2, maxBatchSize: Int = 128, maxWaiting: Int = 4096) {
        self.router = router
        self.maxBatches = max(1, maxBatches)
        self.maxBatchSize = max(1, maxBatchSize)
        self.maxWaiting = max(1, maxWaiting)
    }

    func job(id: Int64, freshnessToken token: String?) async throws -> Routed<Job?> {
        try await withCheckedThrowingContinuation { continuation in
            let read = Read(id: id, token: token, continuation: continuation, arrived: .now)
            let (batch, refused) = state.withLock { state -> ([Read]?, Bool) in
                guard state.waiting.count < maxWaiting else { return (nil, true) }
                state.waiting.append(read)
                guard state.batchesInFlight < maxBatches else { return (nil, false) }
                state.batchesInFlight += 1
                return (take(&state), false)
            }
            if refused {
                return continuation.resume(throwing: unreachable("\(maxWaiting) reads are already waiting for the read path"))
            }
            // A batch runs apart from the read that started it: its other reads must not
            // wait on that caller, nor be cancelled with it.
            if let batch { Task { await self.run(batch) } }
        }
    }

    private func take(_ state: inout State) -> [Read] {
        let count = min(maxBatchSize, state.waiting.count)
        let batch = Array(state.waiting.prefix(count))
        state.waiting.removeFirst(count)
        return batch
    }

    private func unreachable(_ reason: String) -> PaymentsError {
        PaymentsError.unreachable(role: "pgbouncer-read", endpoint: router.database.readURL.endpoint, reason: reason)
    }

    /// Sends batches while reads wait, then frees the slot.
    private func run(_ first: [Read]) async {
        var batch = first
        while true {
            // A read that waited longer than the router's timeout for its batch (the read
            // path stalls and each batch waits the timeout out) fails as a single read that
            // got no answer in time did, instead of waiting on.
            let now = ContinuousClock.now
            let late = batch.filter { now - $0.arrived > router.timeout }
            for read in late {
                read.continuation.resume(throwing: unreachable("waited more than \(router.timeout) for a batch"))
            }
            if late.count < batch.count { await send(late.isEmpty ? batch : batch.filter { now - $0.arrived <= router.timeout }) }
            let next: [Read]? = state.withLock { state in
                guard !state.waiting.isEmpty else {
                    state.batchesInFlight -= 1
                    return nil
                }
                return take(&state)
            }
            guard let next else { return }
            batch = next
        }
    }

    private func send(_ batch: [Read]) async {
        let (ids, tokens) = (batch.map(\.id), batch.map(\.token))
        let results = await router.readBatch(count: batch.count) { positions in
            ReadStatements.jobs(ids: positions.map { ids[$0] }, freshAs: positions.map { tokens[$0] })
        } decode: { row in
            guard var job = try Job.decode(row, at: ReadNode.columnCount) else { return nil }
            job.postings = try Job.decodePostings(row, at: ReadNode.columnCount + Job.columnCount)
            return job
        } unusable: { (job: Job?, source) in
            // A job created a moment ago may not have reached this replica yet.
            job == nil ? "not found on \(source.node)" : nil
        }
        for (read, result) in zip(batch, results) { read.continuation.resume(with: result) }
    }
}
