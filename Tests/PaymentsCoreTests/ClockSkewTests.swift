import Foundation
import PaymentsCore
import Testing

/// Deadlines are set on a worker's clock, checked on the gateway's, and settled against
/// the database's: every pair must agree within the margin, and the report says when not.
@Suite struct ClockSkewTests {
    @Test func theWidestPairIncludesThisMachine() throws {
        let readings = [ClockReading(name: "primary", offsetSeconds: 0.5, uncertaintySeconds: 0.001),
                        ClockReading(name: "gateway", offsetSeconds: -1.75, uncertaintySeconds: 0.002)]
        let (a, b, skew) = try #require(ClockSkew.widest(readings, local: "this machine"))
        #expect(a == "gateway" && b == "primary" && abs(skew - 2.25) < 1e-9)
        #expect(ClockSkew.widest([], local: "this machine") == nil)
    }

    @Test func theReportWarnsPastTheMargin() {
        let near = ClockSkew.report([ClockReading(name: "replica-1", offsetSeconds: 0.4, uncertaintySeconds: 0)], local: "here")
        #expect(near.last?.contains("widest: here and replica-1, 0.400 s apart") == true, "\(near)")
        let far = ClockSkew.report([ClockReading(name: "replica-1", offsetSeconds: 2.5, uncertaintySeconds: 0)], local: "here")
        #expect(far.last?.hasPrefix("  WARNING: here and replica-1 are 2.500 s apart, past the 2 s margin") == true, "\(far)")
    }

    @Test func aClockIsMeasuredAgainstTheMidpointOfItsRoundTrip() async throws {
        let reading = try await ClockSkew.measure("ahead") { Date() + 10 }
        #expect(abs(reading.offsetSeconds - 10) < 0.5 && reading.uncertaintySeconds >= 0)
        #expect(ClockSkew.timeField(Data(#"{"status":"ok","time_ms":1700000000123}"#.utf8)) == Date(timeIntervalSince1970: 1_700_000_000.123))
        #expect(ClockSkew.timeField(Data(#"{"status":"ok"}"#.utf8)) == nil)
    }
}
