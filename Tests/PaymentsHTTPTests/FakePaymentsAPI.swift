import Foundation
import PaymentsCore
import PaymentsHTTP
import Synchronization

/// A PaymentsAPI without a database: the HTTP contract is the point of these tests.
/// It remembers what it was asked and answers what the test set up.
final class FakePaymentsAPI: PaymentsAPI {
    struct State {
        var jobs: [String: (request: PaymentRequest, job: Job)] = [:]
        var creates = 0
        var readSource = ReadSource(kind: .replica, node: "payments-replica-1", lagSeconds: 0.25)
        var failure: (any Error & Sendable)?
        var problems: [String] = []
    }
    let state = Mutex(State())

    var creates: Int { state.withLock { $0.creates } }
    func failNextCalls(with error: (any Error & Sendable)?) { state.withLock { $0.failure = error } }
    func setReadSource(_ source: ReadSource) { state.withLock { $0.readSource = source } }
    func setProblems(_ problems: [String]) { state.withLock { $0.problems = problems } }

    private func check() throws { if let error = state.withLock({ $0.failure }) { throw error } }

    func currencies() async throws -> Set<String> { ["EUR", "USD", "JPY"] }

    func create(_ request: PaymentRequest, idempotencyKey: String) async throws -> CreateResult {
        try check()
        return state.withLock { s in
            s.creates += 1
            if let existing = s.jobs[idempotencyKey] {
                guard existing.request == request else { return .keyReusedWithDifferentBody(existingID: existing.job.id) }
                return .existing(existing.job, freshnessToken: "0/16B3748")
            }
            let job = Job(id: Int64(s.jobs.count + 1), idempotencyKey: idempotencyKey, payment: request.payment,
                          priority: request.priority, maxAttempts: request.maxAttempts, state: .queued, attempt: 0,
                          createdAt: "2026-11-27T10:00:00.000000Z", updatedAt: "2026-11-27T10:00:00.000000Z")
            s.jobs[idempotencyKey] = (request, job)
            return .created(job, freshnessToken: "0/16B3748")
        }
    }

    func payment(id: Int64, freshnessToken: String?) async throws -> Routed<Job?> {
        try check()
        return state.withLock { s in
            var job = s.jobs.values.first { $0.job.id == id }?.job
            job?.postings = []
            return Routed(value: job, source: s.readSource)
        }
    }

    func stats() async throws -> ServerStats {
        try check()
        return ServerStats(
            queue: QueueStats(countsByState: ["queued": 2, "running": 0, "succeeded": 5, "failed": 1, "cancelled": 0],
                              finishedLastMinute: 6, jobsPerSecondLastMinute: 0.1, replicas: [], countsServedBy: "payments-replica-2"),
            worker: .init(WorkerMetrics.Totals(), latencyPercentiles: [0.1, 0.2, 0.3]),
            readsServedBy: ["payments-replica-1": 3], gateway: nil)
    }

    func readinessProblems() async -> [String] { state.withLock { $0.problems } }

    func cancel(id: Int64) async throws -> CancelResult? {
        try check()
        return nil
    }
}
