import Foundation
import Testing
@testable import PaymentsBench

@Suite struct BenchReportTests {
    func report(_ figures: [BenchFigure], commit: String = "abc1234") -> BenchReport {
        var r = BenchReport(date: "2026-12-04T21:00:00Z", commit: commit, cores: 2, quick: false)
        r.figures = figures
        return r
    }

    @Test func eachFigureIsPrintedBesideItsCeilingAndTheirRatio() {
        let r = report([
            BenchFigure(phase: "drain", name: "drain (jobs/s)", value: 8_000, unit: "jobs/s", ceiling: "UPDATE (TPS)", target: "≥ 1.0x"),
            BenchFigure(phase: "ceilings", name: "UPDATE (TPS)", value: 10_000, unit: "TPS"),
        ])
        #expect(r.ratio(of: r.figures[0]) == 0.8)
        #expect(r.ratio(of: r.figures[1]) == nil)
        let table = r.table()
        #expect(table.contains("| drain (jobs/s) | 8,000 jobs/s | 10,000 TPS UPDATE (TPS) | 0.80x | ≥ 1.0x |"), "\(table)")
        #expect(table.contains("commit abc1234"))
    }

    @Test func aComparisonGivesEachFiguresRatioToTheEarlierRun() throws {
        let earlier = report([BenchFigure(phase: "reads", name: "GET (req/s)", value: 4_000, unit: "req/s")], commit: "old")
        let now = report([BenchFigure(phase: "reads", name: "GET (req/s)", value: 5_000, unit: "req/s"),
                          BenchFigure(phase: "reads", name: "p99 (ms)", value: 12.5, unit: "ms")])
        // What --compare reads is what --json wrote.
        let decoded = try JSONDecoder().decode(BenchReport.self, from: try JSONEncoder().encode(earlier))
        let text = now.comparison(to: decoded)
        #expect(text.contains("| GET (req/s) | 4,000 req/s | 5,000 req/s | 1.25x |"), "\(text)")
        #expect(text.contains("| p99 (ms) | - | 12.5 ms | new |"), "\(text)")
    }

    /// The latency rows name their rate, which follows each run's own drain: a run at
    /// 1,290/s is compared with one at 1,308/s, not printed as new.
    @Test func aLatencyRowIsComparedWithTheEarlierRunsAtItsOwnRate() {
        let name = { (rate: Int) in "enqueue-to-completion at a tenth of the drain (\(rate)/s, 20 ms gateway, 60 s) p50" }
        let earlier = report([BenchFigure(phase: "latency", name: name(1308), value: 40.4, unit: "ms")], commit: "old")
        let now = report([BenchFigure(phase: "latency", name: name(1290), value: 34, unit: "ms")])
        let text = now.comparison(to: earlier)
        #expect(text.contains("| \(name(1290)) | 40.4 ms | 34 ms | 0.84x |"), "\(text)")
    }

    /// A paced run that fell behind says so in the table: its processed rate beside the
    /// rate it was offered (2026-12-08: a half-load run offered 6,532/s measured a p99 of
    /// 4.8 s, a backlog that read as a latency).
    @Test func aPacedRunShowsTheRateItWasProcessedAtAgainstTheOffered() {
        let figures = BenchRunner.pacedFigures(label: "half", offered: 6_532, processed: 5_360)
        let table = report(figures).table()
        #expect(table.contains("| paced at half of the drain: processed, first enqueue to last completion (jobs/s) | 5,360 jobs/s | 6,532 jobs/s paced at half of the drain: offered (jobs/s) | 0.82x |"), "\(table)")
        // The names carry no rate: the next run's pair compares with this one's.
        let next = report(BenchRunner.pacedFigures(label: "half", offered: 6_100, processed: 6_080))
        #expect(next.comparison(to: report(figures, commit: "old")).contains("| paced at half of the drain: offered (jobs/s) | 6,532 jobs/s | 6,100 jobs/s | 0.93x |"))
    }

    @Test(arguments: [("456.00us", 0.46), ("13.42ms", 13.42), ("1.02s", 1020.0), ("junk", 0.0)])
    func wrkDurationsAreReadAsMilliseconds(_ text: String, _ ms: Double) {
        #expect(BenchRunner.milliseconds(text) == ms)
    }

    /// The tools are checked before the first phase runs: only those the phases use.
    @Test func theToolsAreThoseOfThePhasesChosen() {
        #expect(BenchRunner.tools(for: [.drain, .latency, .inflight]) == [])
        #expect(BenchRunner.tools(for: [.reads]) == ["wrk"])
        #expect(BenchRunner.tools(for: BenchSettings.Phase.allCases) == ["pgbench", "psql", "wrk"])
    }
}
