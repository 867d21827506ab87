import Foundation
import PostgresNIO

/// The one mapping between a payment's row (queue, history or archive) and `Job`: every
/// statement that returns jobs selects their columns in this order and decodes them here.
extension Job {
    /// The columns of a job, as every statement that returns one selects them (IntakeSQL;
    /// `payment_status`, migration 0013): id, key, payment, scheduling, state, and the
    /// timestamps as ISO 8601 text, UTC, microseconds.
    static let columnCount = 19

    /// Decodes the job whose `columns` start at `offset`; nil when the row holds no job
    /// (a LEFT JOIN that matched nothing).
    static func decode(_ row: PostgresRandomAccessRow, at offset: Int) throws -> Job? {
        guard let id = try row[offset].decode(Int64?.self) else { return nil }
        return Job(
            id: id,
            idempotencyKey: try row[offset + 1].decode(String.self),
            payment: Payment(
                amountMinor: try row[offset + 2].decode(Int64.self),
                currency: try row[offset + 3].decode(String.self),
                debtor: try row[offset + 4].decode(String.self),
                creditor: try row[offset + 5].decode(String.self)),
            priority: try row[offset + 6].decode(Int16.self),
            maxAttempts: try row[offset + 7].decode(Int32.self),
            state: try row[offset + 8].decode(JobState.self),
            attempt: try row[offset + 9].decode(Int32.self),
            lastError: try row[offset + 10].decode(String?.self),
            chargeID: try row[offset + 11].decode(String?.self),
            createdAt: try row[offset + 12].decode(String.self),
            updatedAt: try row[offset + 13].decode(String.self),
            finishedAt: try row[offset + 14].decode(String?.self),
            giveUpAt: try row[offset + 15].decode(String?.self),
            failureReason: try row[offset + 16].decode(FailureReason?.self),
            cancelRequestedAt: try row[offset + 17].decode(String?.self),
            heldReason: try row[offset + 18].decode(HeldReason?.self))
    }

    /// Decodes the postings column (`payment_status`'s last, migration 0013) at `index`.
    static func decodePostings(_ row: PostgresRandomAccessRow, at index: Int) throws -> [Posting] {
        guard let json = try row[index].decode(String?.self) else { return [] }
        // Read on every status read: Foundation's decoder took 7% of the serve's CPU
        // under wrk (perf, 2026-12-05). Anything FlatJSON is not sure of goes to it.
        if let objects = FlatJSON.objects(json.utf8) {
            let postings = objects.compactMap(Posting.init(fields:))
            if postings.count == objects.count { return postings }
        }
        return try JSONDecoder().decode([Posting].self, from: Data(json.utf8))
    }
}
