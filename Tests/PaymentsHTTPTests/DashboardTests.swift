import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PaymentsCore
import Prometheus
import Testing
@testable import PaymentsHTTP

/// The dashboard's logic without a topology: per-second figures, tiles, events, and
/// its routes. The page in a real browser against the real topology is suites/dashboard.
@Suite struct DashboardTests {
    static let logger = Logger(label: "test")

    func observation(replicas: [(String, String)] = [], succeeded: Int = 0) -> Observation {
        Observation(counts: .success(["queued": 5, "succeeded": succeeded, "failed": 0]),
                    replication: .success(replicas.map { .init(name: $0.0, state: $0.1, replayLagBytes: 0, replayLagSeconds: 0.1) }),
                    owners: .success(["host/1/a": 3, "host/2/b": 5]), haproxy: nil, patroni: nil, gateway: nil, pools: [])
    }

    @Test func percentilesByNearestRank() {
        #expect(Store.percentile([], 0.5) == nil)
        #expect(Store.percentile([1, 2, 3, 4], 0.5) == 2)
        #expect(Store.percentile([1, 2, 3, 4], 0.99) == 4)
        #expect(Store.percentile([7], 0.01) == 7)
    }

    @Test func ratesAreDeltasOverElapsedTime() {
        var store = Store()
        var totals = WorkerMetrics.Totals()
        _ = store.point(at: 100, totals: totals, reads: ["payments-replica-1": 10], latencies: [],
                        observation: observation(succeeded: 100))
        totals.succeeded = 50
        totals.claimed = 80
        let point = store.point(at: 102, totals: totals, reads: ["payments-replica-1": 30], latencies: [0.1, 0.2, 0.9],
                                observation: observation(replicas: [("payments-replica-1", "streaming")], succeeded: 300))
        #expect(point.succeeded == 25)
        #expect(point.claimed == 40)
        #expect(point.finishedAll == 100)
        #expect(point.readsPerNode["replica-1"] == 10)
        #expect(point.lagSeconds["replica-1"] == 0.1)
        #expect(point.latencyP50 == 0.2 && point.latencyP99 == 0.9)
    }

    @Test func aReplicaThatStopsStreamingIsShownDownThenUp() {
        var store = Store()
        let both = [("payments-replica-1", "streaming"), ("payments-replica-2", "streaming")]
        func tiles(_ replicas: [(String, String)]) -> [String: String] {
            let state = store.state(at: 1, observation: observation(replicas: replicas), sources: DashboardSources(),
                                    totals: .init(), concurrency: 10)
            return Dictionary(uniqueKeysWithValues: state.tiles.map { ($0.name, "\($0.status) \($0.detail ?? "")") })
        }
        #expect(tiles(both)["replica-1"] == "up streaming")
        #expect(tiles([both[1]])["replica-1"] == "down not streaming to the primary")
        #expect(store.events.map(\.text) == ["replica-1 down"])
        #expect(tiles(both)["replica-2"] == "up streaming")
        #expect(store.events.map(\.text) == ["replica-1 down", "replica-1 up"])
    }

    @Test func aSourceThatFailsIsUnknownAndListedOnce() {
        var store = Store()
        struct Refused: Error, CustomStringConvertible { var description: String { "connection refused" } }
        for _ in 0..<3 {
            var seen = observation()
            seen.replication = .failure(Refused())
            let state = store.state(at: 1, observation: seen, sources: DashboardSources(), totals: .init(), concurrency: nil)
            #expect(state.tiles.first?.status == "unknown")
        }
        #expect(store.errors.count == 1)
        #expect(store.errors.first?.source == "primary")
    }

    @Test func aMissingAdminCredentialSaysSo() {
        let tile = Tiles.pooler("pgbouncer-read", .failure(PgBouncerAdminError.noCredentials(pooler: "pgbouncer-read")))
        #expect(tile.status == "no_credentials")
        #expect(tile.detail?.contains("PGBOUNCER_STATS_USER") == true)
    }

    /// The backups tile: down while archiving fails, not configured without archiving, the
    /// last backup when a repository is given.
    @Test func theBackupsTileShowsTheArchiveAndTheLastBackup() {
        func health(failing: Bool, mode: String = "on") -> ArchiveHealth {
            ArchiveHealth(mode: mode, archived: 9, lastArchivedWAL: "W", lastArchivedAgeSeconds: failing ? 60 : 1,
                          failed: failing ? 1 : 0, lastFailedWAL: failing ? "X" : nil, lastFailedAgeSeconds: failing ? 2 : nil)
        }
        let backup = LastBackup(label: "20261205-115221F", type: "full", stoppedAt: Date(), repositoryBytes: 700_000_000)
        let healthy = Tiles.backups(.success(health(failing: false)), lastBackup: .success(backup))
        #expect(healthy.status == "up" && healthy.kind == "archive")
        #expect(healthy.detail?.contains("last backup: full 20261205-115221F") == true, "\(healthy.detail ?? "")")
        #expect(Tiles.backups(.success(health(failing: true)), lastBackup: nil).status == "down")
        #expect(Tiles.backups(.success(health(failing: false, mode: "off")), lastBackup: nil).status == "not_configured")
        #expect(Tiles.backups(.success(health(failing: false)), lastBackup: nil).detail?.contains("--backup-repo") == true)
    }

    @Test func otherServesFromTheLeaseOwners() {
        let tiles = Tiles.serves(totals: .init(), concurrency: 10, owner: "host/1/a", owners: .success(["host/1/a": 3, "host/2/b": 5]))
        #expect(tiles.map(\.name) == ["serve (this process)", "serve pid 2 on host"])
        #expect(tiles[1].detail == "5 jobs held")
    }

    @Test func patroniMemberStates() {
        #expect(Tiles.status(ofMember: "running") == "up")
        #expect(Tiles.status(ofMember: "streaming") == "up")
        #expect(Tiles.status(ofMember: "stopped") == "down")
        #expect(Tiles.status(ofMember: "starting") == "unknown")
    }

    @Test func serverSentEventFraming() {
        let event = ServerSentEvent.encode(name: "tick", ["a": 1])
        #expect(event.map { String(buffer: $0) } == "event: tick\ndata: {\"a\":1}\n\n")
    }

    @Test func pageAndSnapshotRoutes() async throws {
        let collector = try unreachableCollector()
        let app = Application(router: buildRouter(api: FakePaymentsAPI(), registry: PrometheusCollectorRegistry(), dashboard: collector))
        try await app.test(.router) { client in
            let page = try await client.execute(uri: "/", method: .get)
            #expect(page.status == .ok)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            let html = String(buffer: page.body)
            #expect(html.contains("new EventSource(\"/v1/dashboard/events\")"))
            #expect(!html.contains("http://") && !html.contains("https://"), "no CDN or outside resource")
            let snapshot = try await client.execute(uri: "/v1/dashboard", method: .get)
            #expect(snapshot.status == .ok)
            let json = try JSONSerialization.jsonObject(with: Data(buffer: snapshot.body)) as? [String: Any]
            #expect(json?["series"] as? [Any] != nil)
            #expect(json?["interval"] as? Double == 1)
        }
    }
    @Test func anotherServesFactLeavesWithItsTileAndAFailedOwnersReadIsListed() {
        var store = Store()
        _ = store.state(at: 1, observation: observation(), sources: DashboardSources(), totals: .init(), concurrency: nil)
        #expect(store.facts.keys.contains("serve pid 2 on host"))
        var gone = observation()
        gone.owners = .success([:])
        _ = store.state(at: 2, observation: gone, sources: DashboardSources(), totals: .init(), concurrency: nil)
        #expect(!store.facts.keys.contains { $0.hasPrefix("serve pid") })
        #expect(store.facts["serve (this process)"] == "up")
        struct Refused: Error, CustomStringConvertible { var description: String { "connection refused" } }
        gone.owners = .failure(Refused())
        _ = store.state(at: 3, observation: gone, sources: DashboardSources(), totals: .init(), concurrency: nil)
        #expect(store.errors.map(\.source) == ["other serves"])
    }

    func unreachableCollector() throws -> DashboardCollector {
        let url = try DatabaseURL(parsing: "postgres://u:p@127.0.0.1:1/db")
        let database = Database(writeURL: url, readURL: url, writePoolSize: 1, readPoolSize: 1, logger: Self.logger)
        return DashboardCollector(sources: DashboardSources(), database: database, apiReads: ReadCounters(),
                                  metrics: WorkerMetrics(), concurrency: nil, logger: Self.logger)
    }

    /// A viewer that stops reading (a stalled proxy, a suspended client) must not keep
    /// the collection, and its queries, running for ever.
    @Test func aViewerThatReadsNothingIsLetGo() async throws {
        let collector = try unreachableCollector()
        let stream = collector.subscribe()
        #expect(collector.viewers == 1)
        for _ in 0...DashboardCollector.unreadKept { await collector.tick() }
        #expect(collector.viewers == 0)
        // What it held is still delivered, then the stream ends (the page reconnects).
        var received = 0
        for await _ in stream { received += 1 }
        #expect(received == DashboardCollector.unreadKept)
    }

    @Test func aViewerThatReadsKeepsItsStream() async throws {
        let collector = try unreachableCollector()
        let stream = collector.subscribe()
        var iterator = stream.makeAsyncIterator()
        for _ in 0...DashboardCollector.unreadKept {
            await collector.tick()
            _ = await iterator.next()
        }
        #expect(collector.viewers == 1)
    }
}

/// One read per source at a time, and a late answer is not wasted.
@Suite struct SingleFlightTests {
    actor Calls {
        var count = 0
        func add() -> Int { count += 1; return count }
    }

    /// Holds a read until the test opens it: no timing the machine's load can upset.
    final class Gate: Sendable {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        func wait() async { for await _ in stream { return } }
        func open() { continuation.yield(); continuation.finish() }
    }

    func held(_ gate: Gate, _ calls: Calls) -> @Sendable () async throws -> Int {
        {
            let n = await calls.add()
            await gate.wait()
            return n
        }
    }

    @Test func aReadStillRunningIsWaitedOnNotStartedAgain() async throws {
        let flight = SingleFlight<Int>()
        let calls = Calls(), gate = Gate()
        let first = await flight.run(within: .milliseconds(50), held(gate, calls))
        #expect(first.timedOut)
        #expect(flight.isRunning)
        let again = await flight.run(within: .milliseconds(50), held(gate, calls))
        #expect(again.timedOut)
        #expect(await calls.count == 1, "waited on, not started again")
        gate.open()
        let second = await flight.run(within: .seconds(5), held(gate, calls))
        #expect(try second.get() == 1, "the first read's answer, taken by the next collection")
        #expect(await calls.count == 1)
        let third = await flight.run(within: .seconds(5)) { await calls.add() }
        #expect(try third.get() == 2, "taken once: the next collection reads again")
    }

    @Test func anAnswerNobodyTookGoesStale() async throws {
        let flight = SingleFlight<Int>(freshness: .milliseconds(100))
        let calls = Calls(), gate = Gate()
        let first = await flight.run(within: .milliseconds(10), held(gate, calls))
        #expect(first.timedOut)
        gate.open()
        for _ in 0..<500 where flight.isRunning { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!flight.isRunning)
        try await Task.sleep(for: .milliseconds(300))
        let second = await flight.run(within: .seconds(5)) { await calls.add() }
        #expect(try second.get() == 2)
    }

    @Test func aFailureIsReturnedAndNotKept() async throws {
        struct Refused: Error {}
        let flight = SingleFlight<Int>()
        let first = await flight.run(within: .seconds(5)) { throw Refused() }
        #expect(throws: Refused.self) { try first.get() }
        let second = await flight.run(within: .seconds(5)) { 7 }
        #expect(try second.get() == 7)
    }
}

extension Result {
    var timedOut: Bool { if case .failure(let error) = self { error is TimeoutError } else { false } }
}
