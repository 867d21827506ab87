import Foundation
import NIOCore
import PaymentsCore

/// The collector's memory: the series, the last state, what changed (events) and what
/// failed (errors), and the previous readings the per-second rates are taken against.
struct Store {
    var series: [DashboardPoint] = []
    var state: DashboardState?
    var events: [DashboardState.Event] = []
    var errors: [DashboardState.Problem] = []
    var lastWatched: ContinuousClock.Instant?
    var subscribers: [UInt64: AsyncStream<ByteBuffer>.Continuation] = [:]
    var nextID: UInt64 = 0
    var finished = false

    var previous: (at: Double, totals: WorkerMetrics.Totals, reads: [String: Int])?
    var previousFinished: (at: Double, count: Int)?
    /// Facts the events are changes of: "leader" → "node-1", "tile replica-1" → "down".
    var facts: [String: String] = [:]
    /// Replicas that streamed once, Patroni members listed once: one that goes is shown
    /// down, not forgotten.
    var replicasSeen: Set<String> = []
    var membersSeen: Set<String> = []
    /// The last comparison of this serve's clock with the others'.
    var clocks: [ClockReading] = []

    mutating func point(at now: Double, totals: WorkerMetrics.Totals, reads: [String: Int], latencies: [Double],
                        observation: Observation?) -> DashboardPoint {
        defer { previous = (now, totals, reads) }
        let elapsed = previous.map { max(now - $0.at, 0.001) }
        func rate(_ key: KeyPath<WorkerMetrics.Totals, Int>) -> Double {
            guard let previous, let elapsed else { return 0 }
            return Double(max(totals[keyPath: key] - previous.totals[keyPath: key], 0)) / elapsed
        }
        var readRates: [String: Double] = [:]
        if let previous, let elapsed {
            for (node, count) in reads { readRates[Tiles.displayName(node)] = Double(max(count - previous.reads[node, default: 0], 0)) / elapsed }
        }
        var finishedAll: Double?
        var lag: [String: Double] = [:]
        if case let .success(counts)? = observation?.counts {
            let count = counts[JobState.succeeded.rawValue, default: 0] + counts[JobState.failed.rawValue, default: 0]
            // Only against the previous second's count: after a time nobody watched, an
            // average over the gap would pass for this second's rate.
            if let last = previousFinished, now > last.at, now - last.at < 3 {
                finishedAll = Double(max(count - last.count, 0)) / (now - last.at)
            }
            previousFinished = (now, count)
        } else {
            previousFinished = nil
        }
        if case let .success(replicas)? = observation?.replication {
            for replica in replicas { lag[Tiles.displayName(replica.name)] = replica.replayLagSeconds ?? 0 }
        }
        return DashboardPoint(
            at: now, claimed: rate(\.claimed), succeeded: rate(\.succeeded), failed: rate(\.failed), retried: rate(\.retried),
            finishedAll: finishedAll, inFlight: totals.inFlight,
            latencyP50: Self.percentile(latencies, 0.50), latencyP99: Self.percentile(latencies, 0.99),
            readsPerNode: readRates, lagSeconds: lag)
    }

    /// `sorted` at `p` (0-1), nearest rank; nil when empty.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double? {
        guard !sorted.isEmpty else { return nil }
        let rank = Int((p * Double(sorted.count)).rounded(.up)) - 1
        return sorted[min(max(rank, 0), sorted.count - 1)]
    }

    mutating func state(at now: Double, observation: Observation, sources: DashboardSources,
                        totals: WorkerMetrics.Totals, concurrency: Int?, owner: String? = nil) -> DashboardState {
        if case let .success(readings)? = observation.clocks { clocks = readings }
        var tiles = Tiles.nodes(observation, replicasSeen: &replicasSeen, membersSeen: &membersSeen)
        tiles.append(Tiles.haproxy(observation.haproxy))
        for (name, pools) in observation.pools { tiles.append(Tiles.pooler(name, pools)) }
        tiles.append(contentsOf: Tiles.serves(totals: totals, concurrency: concurrency, owner: owner, owners: observation.owners, clocks: clocks))
        tiles.append(Tiles.gateway(observation.gateway, url: sources.gatewayURL))
        tiles.append(Tiles.backups(observation.archive, lastBackup: observation.lastBackup))

        var patroni: DashboardState.Patroni?
        if case let .success(cluster)? = observation.patroni {
            patroni = .init(leader: cluster.leader?.name, syncStandby: cluster.syncStandby, timeline: cluster.timeline,
                            members: cluster.members)
        }
        noteChanges(at: now, tiles: tiles, patroni: patroni)
        noteErrors(at: now, observation)
        var counts: [String: Int] = [:]
        if case let .success(byState) = observation.counts { counts = byState } else { counts = state?.countsByState ?? [:] }
        return DashboardState(at: now, mode: sources.mode, tiles: tiles, patroni: patroni, countsByState: counts,
                              inFlight: totals.inFlight, events: events, errors: errors)
    }

    /// Events: a tile going up or down, the leader, the synchronous standby or the
    /// timeline changing. The first collection only learns the facts.
    private mutating func noteChanges(at now: Double, tiles: [DashboardState.Tile], patroni: DashboardState.Patroni?) {
        var current: [String: String] = [:]
        for tile in tiles where tile.status == "up" || tile.status == "down" { current["\(tile.name)"] = tile.status }
        if let patroni {
            current["leader"] = patroni.leader ?? "none"
            current["synchronous standby"] = patroni.syncStandby ?? "none"
            if let timeline = patroni.timeline { current["timeline"] = String(timeline) }
        } else if let primary = tiles.first(where: { $0.role == "primary" && $0.status == "up" }) {
            current["primary node"] = primary.name
        }
        for (key, value) in current.sorted(by: { $0.key < $1.key }) {
            guard let before = facts[key], before != value else { continue }
            let text = ["up", "down"].contains(value) ? "\(key) \(value)" : "\(key) \(before) → \(value)"
            events.append(.init(at: now, text: text))
        }
        // Another serve's tile comes and goes with the jobs it holds, and each restart is
        // a new pid: its fact leaves with its tile, so facts stay as many as the tiles.
        facts = facts.filter { !$0.key.hasPrefix(Tiles.otherServePrefix) || current[$0.key] != nil }
        facts.merge(current) { $1 }
        if events.count > Store.eventsKept { events.removeFirst(events.count - Store.eventsKept) }
    }

    private mutating func noteErrors(at now: Double, _ observation: Observation) {
        var failures: [(String, any Error)] = []
        if case let .failure(error) = observation.counts { failures.append(("job counts", error)) }
        if case let .failure(error) = observation.replication { failures.append(("primary", error)) }
        if case let .failure(error) = observation.owners { failures.append(("other serves", error)) }
        if case let .failure(error)? = observation.haproxy { failures.append(("haproxy", error)) }
        if case let .failure(error)? = observation.patroni { failures.append(("patroni", error)) }
        if case let .failure(error)? = observation.gateway { failures.append(("gateway", error)) }
        if case let .failure(error)? = observation.clocks { failures.append(("clocks", error)) }
        if case .success? = observation.clocks, let (a, b, skew) = ClockSkew.widest(clocks, local: "this serve"), skew > ClockSkew.margin {
            failures.append(("clocks", ClockSkewError(a: a, b: b, seconds: skew)))
        }
        for (name, result) in observation.pools { if case let .failure(error) = result { failures.append((name, error)) } }
        for (source, error) in failures {
            let message = describe(error)
            // The same failure again moves its time instead of filling the list.
            if let i = errors.lastIndex(where: { $0.source == source }), errors[i].message == message {
                errors[i].at = now
            } else {
                errors.append(.init(at: now, source: source, message: message))
            }
        }
        if errors.count > Store.errorsKept { errors.removeFirst(errors.count - Store.errorsKept) }
    }

    static let eventsKept = DashboardCollector.eventsKept
    static let errorsKept = DashboardCollector.errorsKept
}

/// Two clocks further apart than the deadlines' margin: a "no charge" may be trusted early.
struct ClockSkewError: Error, CustomStringConvertible {
    var a: String, b: String, seconds: Double
    var description: String {
        "\(a) and \(b) are \(String(format: "%.3f", seconds)) s apart, past the \(Int(ClockSkew.margin)) s margin the deadlines assume; fix the clocks (NTP)"
    }
}
