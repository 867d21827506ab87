import PaymentsCore
import Testing

@Suite struct LatencyHistogramTests {
    @Test func percentilesOfKnownValuesWithinThreeDigits() {
        var h = LatencyHistogram()
        h.add((1...1_000).map { Double($0) / 1_000 })   // 1 ms ... 1 s
        let p = h.percentiles([50, 95, 99, 100])
        #expect(h.count == 1_000)
        #expect(abs(p[0] - 0.500) < 0.001, "\(p)")
        #expect(abs(p[1] - 0.950) < 0.001, "\(p)")
        #expect(abs(p[2] - 0.990) < 0.001, "\(p)")
        #expect(abs(p[3] - 1.000) < 0.001, "\(p)")
    }

    @Test func emptyIsZeroAndOddValuesAreClampedNotLost() {
        var h = LatencyHistogram()
        #expect(h.percentiles([50, 99]) == [0, 0])
        h.add([-3, 0, 1e9, .infinity, .nan])
        #expect(h.count == 5)
        let p = h.percentiles([0, 100])
        #expect(p[0] <= 0.000_001)
        #expect(abs(p[1] - 3_600) < 3_600 * 0.001)
    }

    @Test func costDoesNotGrowWithTheNumberOfSamples() {
        var h = LatencyHistogram()
        for _ in 0..<100 { h.add((0..<10_000).map { Double($0 % 997) / 1_000 }) }
        #expect(h.count == 1_000_000)
        #expect(h.percentiles([50])[0] > 0.4 && h.percentiles([50])[0] < 0.6)
    }
}
