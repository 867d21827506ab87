import Foundation
import Testing
import PaymentsCore

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

@Suite struct LastBackupTests {
    static let info = """
        [backrest]
        backrest-format=5

        [backup:current]
        20261205-115221F={"backup-error":false,"backup-info-repo-size-delta":704611004,"backup-timestamp-start":1796471541,"backup-timestamp-stop":1796471557,"backup-type":"full"}
        20261205-115221F_20261205-120000I={"backup-error":false,"backup-info-repo-size-delta":1200,"backup-timestamp-start":1796472000,"backup-timestamp-stop":1796472002,"backup-type":"incr"}
        20261205-121000F={"backup-error":true,"backup-info-repo-size-delta":5,"backup-timestamp-start":1796472600,"backup-timestamp-stop":1796472610,"backup-type":"full"}

        [db]
        db-id=1
        """

    @Test func theNewestGoodBackupIsTheLast() throws {
        let last = try #require(LastBackup.parse(backupInfo: Self.info))
        #expect(last.label == "20261205-115221F_20261205-120000I" && last.type == "incr", "a backup marked in error is not one")
        #expect(last.summary(now: last.stoppedAt.addingTimeInterval(300)).hasPrefix("incr 20261205-115221F_20261205-120000I, 5 min ago"))
        #expect(LastBackup.parse(backupInfo: "[backup:current]\n") == nil)
    }

    @Test func aRepositoryThatCannotBeReadSaysWhere() {
        #expect(throws: LastBackup.ReadError.self) { try LastBackup.read(repository: "/nonexistent/repo") }
    }
}
