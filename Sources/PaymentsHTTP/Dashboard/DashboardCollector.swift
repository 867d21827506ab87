import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PaymentsCore
import ServiceLifecycle
import Synchronization

/// The dashboard's one collector per server: every `interval` it reads this process's
/// counters and, while a page watches (or watched in the last 30 s), asks the database,
/// HAProxy, the poolers, Patroni and the gateway once, then sends the same encoded
/// update to every open stream. A hundred pages cost what one costs, apart from the
/// socket writes; nobody watching costs no query at all.
public final class DashboardCollector: Service, Sendable {
    static let seriesLength = 300
    static let watchWindow: Duration = .seconds(30)
    static let eventsKept = 50
    static let errorsKept = 20
    /// Ticks a viewer may leave unread; one more and it is let go (see `tick`).
    static let unreadKept = 10

    let sources: DashboardSources
    let router: ReadRouter
    let apiReads: ReadCounters
    let metrics: WorkerMetrics
    let concurrency: Int?
    /// This process's `lease_owner` (nil without workers): the other owners are other serves.
    let owner: String?
    /// The shared client (never shut down by us): each request is bounded by its own timeout.
    let http = HTTPClient.shared
    let logger: Logger
    private let store = Mutex(Store())
    /// One read per source at a time (see `SingleFlight`).
    private let countsRead = SingleFlight<[String: Int]>()
    private let ownersRead = SingleFlight<[String: Int]>()
    private let clocksRead = SingleFlight<[ClockReading]>()
    /// Clocks are compared every `clockEvery` collections (they drift slowly).
    private let collections = Mutex(0)
    static let clockEvery = 10
    private let replicationRead = SingleFlight<[QueueStats.Replica]>()
    private let archiveRead = SingleFlight<ArchiveHealth?>()
    private let httpReads: [String: SingleFlight<String>]

    /// - Parameter apiReads: the API's read counters (the series shows what the API
    ///   answered; the dashboard's own reads are counted apart).
    public init(sources: DashboardSources, database: Database, apiReads: ReadCounters, metrics: WorkerMetrics,
                concurrency: Int?, owner: String? = nil, logger: Logger) {
        self.sources = sources
        self.router = ReadRouter(database: database, fallback: true, counts: ReadCounters(), logger: logger)
        self.apiReads = apiReads
        self.metrics = metrics
        self.concurrency = concurrency
        self.owner = owner
        self.logger = logger
        var reads: [String: SingleFlight<String>] = [:]
        for url in [sources.haproxyStatsURL, sources.gatewayURL.map { "\($0)/healthz" }].compactMap({ $0 })
            + sources.patroniURLs.map({ "\($0)/cluster" }) {
            reads[url] = SingleFlight()
        }
        self.httpReads = reads
    }

    public func run() async throws {
        let clock = ContinuousClock()
        var next = clock.now
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            await tick()
            next = next.advanced(by: sources.interval)
            if next < clock.now { next = clock.now }  // a slow collection skips, never bunches
            let deadline = next
            try? await cancelWhenGracefulShutdown { try await Task.sleep(until: deadline, clock: clock) }
        }
        finishStreams()
    }

    // MARK: viewers

    /// The state and series so far (`GET /v1/dashboard`); counts as watching.
    public func snapshot() -> DashboardSnapshot {
        store.withLock { s in
            s.lastWatched = .now
            return DashboardSnapshot(state: s.state, series: s.series, interval: sources.interval.seconds)
        }
    }

    /// A stream of server-sent events: the snapshot first, then one `tick` per collection.
    /// A viewer that reads too slowly loses old ticks, never grows the server's memory.
    public func subscribe() -> AsyncStream<ByteBuffer> {
        let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingNewest(Self.unreadKept))
        let interval = sources.interval.seconds
        // Snapshot and registration under one lock: no tick can fall between them (lost,
        // or sent before the snapshot that then drops it).
        store.withLock { s in
            guard !s.finished else { continuation.finish(); return }
            s.lastWatched = .now
            continuation.yield(ServerSentEvent.retry(milliseconds: 2000))
            if let first = ServerSentEvent.encode(name: "snapshot", DashboardSnapshot(state: s.state, series: s.series, interval: interval)) {
                continuation.yield(first)
            }
            let id = s.nextID
            s.nextID += 1
            s.subscribers[id] = continuation
            continuation.onTermination = { [weak self] _ in self?.store.withLock { _ = $0.subscribers.removeValue(forKey: id) } }
        }
        return stream
    }

    public var viewers: Int { store.withLock { $0.subscribers.count } }

    func finishStreams() {
        let open = store.withLock { s in
            s.finished = true
            defer { s.subscribers.removeAll() }
            return Array(s.subscribers.values)
        }
        for continuation in open { continuation.finish() }
    }

    // MARK: one collection

    func tick() async {
        let watched = store.withLock { s in
            !s.subscribers.isEmpty || s.lastWatched.map { ContinuousClock.now - $0 < Self.watchWindow } == true
        }
        let observation = watched ? await observe() : nil
        let now = Date().timeIntervalSince1970
        let totals = metrics.snapshot
        let reads = apiReads.snapshot
        let latencies = metrics.takeRecentLatencies().sorted()
        let (tick, subscribers) = store.withLock { s -> (ByteBuffer?, [UInt64: AsyncStream<ByteBuffer>.Continuation]) in
            let point = s.point(at: now, totals: totals, reads: reads, latencies: latencies, observation: observation)
            s.series.append(point)
            if s.series.count > Self.seriesLength { s.series.removeFirst(s.series.count - Self.seriesLength) }
            if let observation {
                s.state = s.state(at: now, observation: observation, sources: sources, totals: totals, concurrency: concurrency,
                                  owner: owner)
            } else {
                // Nobody watches: what was seen last goes stale, and the next viewer must
                // not take it for the present (its page waits for the first collection).
                s.state = nil
            }
            guard !s.subscribers.isEmpty else { return (nil, [:]) }
            return (ServerSentEvent.encode(name: "tick", DashboardTick(state: s.state, point: point)), s.subscribers)
        }
        guard let tick else { return }
        for (id, continuation) in subscribers {
            // A full buffer means the viewer read nothing for `unreadKept` seconds (a
            // stalled proxy, a suspended client): it is let go, so it no longer counts
            // as watching and cannot keep the collection running. Its stream ends after
            // what it holds; a browser that wakes up reconnects.
            if case .dropped = continuation.yield(tick) {
                logger.info("dashboard viewer let go: it read nothing for \(Self.unreadKept) s")
                store.withLock { _ = $0.subscribers.removeValue(forKey: id) }
                continuation.finish()
            }
        }
    }

    /// Every source at once, each bounded: one that hangs costs its tile, not the tick.
    func observe() async -> Observation {
        let router = self.router, logger = self.logger
        async let counts = countsRead.run(within: Self.sourceTimeout) {
            // Failed payments by reason ride along as "failed:<reason>"; "held" is in byState.
            let counts = try await QueueStats.counts(router).value
            return counts.byState.merging(counts.failedByReason.map { ("failed:\($0.key)", $0.value) }) { a, _ in a }
        }
        async let owners = ownersRead.run(within: Self.sourceTimeout) { try await QueueStats.leaseOwners(router) }
        async let replication = replicationRead.run(within: Self.sourceTimeout) {
            try await QueueStats.replication(router.database, logger: logger)
        }
        async let haproxy = fetchHAProxy()
        async let patroni = fetchPatroni()
        async let gateway = fetchGateway()
        async let archive = archiveRead.run(within: Self.sourceTimeout) { try await ArchiveHealth.read(router.database.write, logger: logger) }
        let lastBackup = sources.backupRepository.map { repository in Result { try LastBackup.read(repository: repository) } }
        let clockTurn = collections.withLock { n -> Bool in n += 1; return n % Self.clockEvery == 1 }
        async let clocks = clockTurn ? Optional(await clocksRead.run(within: Self.sourceTimeout) { try await self.readClocks() }) : nil
        var pools: [(String, Result<[PoolerPool], any Error>)] = []
        await withTaskGroup(of: (Int, String, Result<[PoolerPool], any Error>).self) { group in
            for (index, pooler) in sources.poolers.enumerated() {
                group.addTask { (index, pooler.name, await Result { try await pooler.showPools(timeout: Self.sourceTimeout) }) }
            }
            var collected: [(Int, String, Result<[PoolerPool], any Error>)] = []
            for await result in group { collected.append(result) }
            pools = collected.sorted { $0.0 < $1.0 }.map { ($0.1, $0.2) }
        }
        return Observation(counts: await counts, replication: await replication, owners: await owners, haproxy: await haproxy,
                           patroni: await patroni, gateway: await gateway, pools: pools, clocks: await clocks,
                           archive: await archive, lastBackup: lastBackup)
    }

    /// Each source gets this long per collection, so a tick ends within the second.
    static let sourceTimeout: Duration = .milliseconds(900)

    /// The whole answer within `sourceTimeout`: AsyncHTTPClient's own timeout ends with
    /// the headers, and a body that trickles would hold the tick for its read timeout.
    private func get(_ url: String) async throws -> String {
        let http = self.http, logger = self.logger
        let flight = httpReads[url] ?? SingleFlight()
        return try await flight.run(within: Self.sourceTimeout) {
            // A read nobody waits for any more still ends, within 5 s.
            try await withTimeout(.seconds(5)) {
                let response = try await http.execute(HTTPClientRequest(url: url), timeout: .seconds(5), logger: logger)
                let body = try await response.body.collect(upTo: 1 << 20)
                guard (200..<300).contains(response.status.code) else {
                    throw DashboardSourceError.status(url: url, code: Int(response.status.code))
                }
                return String(buffer: body)
            }
        }.get()
    }

    private func fetchHAProxy() async -> Result<[HAProxyServer], any Error>? {
        guard let url = sources.haproxyStatsURL else { return nil }
        return await Result { try HAProxyServer.parse(csv: try await get(url)) }
    }

    /// Every member at once, the first answer wins: a dead node costs nothing.
    private func fetchPatroni() async -> Result<PatroniCluster, any Error>? {
        guard !sources.patroniURLs.isEmpty else { return nil }
        return await withTaskGroup(of: Result<PatroniCluster, any Error>.self) { group in
            for base in sources.patroniURLs {
                group.addTask {
                    await Result { try JSONDecoder().decode(PatroniCluster.self, from: Data(try await self.get("\(base)/cluster").utf8)) }
                }
            }
            var last: Result<PatroniCluster, any Error> = .failure(DashboardSourceError.status(url: "", code: 0))
            for await result in group {
                if case .success = result { group.cancelAll(); return result }
                last = result
            }
            return last
        }
    }

    /// This serve's clock against the primary's, a replica's and the gateway's.
    private func readClocks() async throws -> [ClockReading] {
        var readings = [try await router.primaryClock()]
        if let replica = try? await router.readNodeClock() { readings.append(replica) }
        if let url = sources.gatewayURL, let gateway = try? await ClockProbe.read("gateway", baseURL: url, client: http) {
            readings.append(gateway)
        }
        return readings
    }

    private func fetchGateway() async -> Result<Void, any Error>? {
        guard let url = sources.gatewayURL else { return nil }
        return await Result { _ = try await get("\(url)/healthz") }
    }
}

/// What one collection saw; nil where the source is not configured.
struct Observation: Sendable {
    /// Jobs per state (the read path); the primary's replicas (the write path).
    var counts: Result<[String: Int], any Error>
    var replication: Result<[QueueStats.Replica], any Error>
    /// Running jobs per lease owner: the serve processes at work.
    var owners: Result<[String: Int], any Error>
    var haproxy: Result<[HAProxyServer], any Error>?
    var patroni: Result<PatroniCluster, any Error>?
    var gateway: Result<Void, any Error>?
    var pools: [(String, Result<[PoolerPool], any Error>)]
    /// This serve's clock against the others' (every few collections; nil between).
    var clocks: Result<[ClockReading], any Error>? = nil
    /// The primary's WAL archiver, and the newest backup (nil: no repository given).
    var archive: Result<ArchiveHealth?, any Error> = .success(nil)
    var lastBackup: Result<LastBackup?, any Error>? = nil
}

enum DashboardSourceError: Error, CustomStringConvertible {
    case status(url: String, code: Int)
    var description: String {
        switch self {
        case let .status(url, code): "\(url) answered HTTP \(code)"
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}
