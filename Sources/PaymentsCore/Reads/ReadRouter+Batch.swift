import PostgresNIO

extension ReadRouter {
    /// Several reads answered by one routed statement: one row per read, in order, each
    /// with its own freshness in the node's fourth column. Each read is routed as `read`
    /// routes one: the replica's answer where it is fresh and usable, else the primary's
    /// (one statement for all of those), with the reason. A read path that fails fails
    /// every read (or sends all of them to the primary, with `fallback`).
    /// - Parameter statement: the statement for the reads at the given positions.
    func readBatch<Item: Sendable>(
        count: Int,
        statement: @escaping @Sendable ([Int]) -> PostgresQuery,
        decode: @escaping @Sendable (PostgresRandomAccessRow) throws -> Item,
        unusable: @escaping @Sendable (Item, ReadSource) -> String? = { _, _ in nil }
    ) async -> [Result<Routed<Item>, any Error>] {
        var results = [Result<Routed<Item>, any Error>?](repeating: nil, count: count)
        var again: [(index: Int, reason: String)] = []
        let all = Array(0..<count)
        do {
            let (answer, _) = try await withTimeout(timeout) {
                try await self.run(statement(all), on: self.database.read, decode: { rows in try Self.items(rows, count: count, decode) })
            }
            for (index, (fresh, decoded)) in answer.value.enumerated() {
                counts.record(answer.source)
                guard case let .success(item) = decoded else {
                    // This read's row only (a state this binary does not know, say): the
                    // others in the batch are answered.
                    results[index] = decoded.map { Routed(value: $0, source: answer.source) }
                    continue
                }
                if !fresh {
                    again.append((index, "\(answer.source.node) has not replayed the token yet"))
                } else if let why = unusable(item, answer.source) {
                    again.append((index, why))
                } else {
                    results[index] = .success(Routed(value: item, source: answer.source))
                }
            }
        } catch where isTransientDatabaseError(error) {
            guard fallback else {
                let failure = PaymentsError.unreachable(role: "pgbouncer-read", endpoint: database.readURL.endpoint, reason: describe(error))
                return Array(repeating: .failure(failure), count: count)
            }
            logThrottled("read path failed; reading from the primary", error: error)
            again = all.map { ($0, "read path unavailable: \(describe(error))") }
        } catch {
            return Array(repeating: .failure(error), count: count)
        }
        if !again.isEmpty {
            let indices = again.map(\.index)
            do {
                let (answer, _) = try await withTimeout(timeout) {
                    try await self.run(statement(indices), on: self.database.write, decode: { rows in
                        try Self.items(rows, count: indices.count, decode)
                    })
                }
                for ((index, reason), (_, item)) in zip(again, answer.value) {
                    counts.record(answer.source)
                    var source = answer.source
                    source.viaWritePath = true
                    source.reason = reason
                    results[index] = item.map { Routed(value: $0, source: source) }
                }
            } catch {
                for index in indices { results[index] = .failure(error) }
            }
        }
        return results.map { $0 ?? .failure(PaymentsError.database("a batched read lost an item")) }
    }

    /// Each row's freshness and item (or why its row could not be read); exactly `count`
    /// rows, in order. Only a wrong row count or a node column that cannot be read fails
    /// the whole batch.
    private static func items<Item>(_ rows: [PostgresRandomAccessRow], count: Int,
                                    _ decode: (PostgresRandomAccessRow) throws -> Item) throws -> [(fresh: Bool, item: Result<Item, any Error>)] {
        guard rows.count == count else {
            throw PaymentsError.database("a batched read of \(count) returned \(rows.count) rows")
        }
        return try rows.map { row in (try row[3].decode(Bool.self), Result { try decode(row) }) }
    }
}
