import Testing
@testable import PaymentsCore

@Suite struct ArchiveHealthTests {
    static func health(archivedAge: Double?, failedAge: Double?, mode: String = "on") -> ArchiveHealth {
        ArchiveHealth(mode: mode, archived: 3, lastArchivedWAL: archivedAge == nil ? nil : "000000010000000000000003",
                      lastArchivedAgeSeconds: archivedAge, failed: failedAge == nil ? 0 : 1,
                      lastFailedWAL: failedAge == nil ? nil : "000000010000000000000004", lastFailedAgeSeconds: failedAge)
    }

    @Test func failingOnlyWhenTheLastAttemptFailed() {
        #expect(!Self.health(archivedAge: 5, failedAge: nil).isFailing)
        #expect(!Self.health(archivedAge: 5, failedAge: 60).isFailing, "a failure followed by a success has healed")
        #expect(Self.health(archivedAge: 60, failedAge: 5).isFailing)
        #expect(Self.health(archivedAge: nil, failedAge: 5).isFailing)
    }

    @Test func theSummarySaysWhatAnOperatorNeeds() {
        #expect(Self.health(archivedAge: 60, failedAge: 5).summary.contains("FAILING"))
        #expect(Self.health(archivedAge: 5, failedAge: nil, mode: "off").summary.hasPrefix("off"))
    }
}
