import Foundation

/// One versioned SQL file from `Migrations/`.
public struct Migration: Sendable, Equatable {
    public var version: String
    public var name: String
    public var sql: String

    /// A stable checksum of the file (FNV-1a 64): an applied file must not change.
    public var checksum: String { String(fnv1a64(sql), radix: 16) }

    /// `0002_payment_jobs.sql` -> version `0002`.
    public init?(fileName: String, sql: String) {
        guard fileName.hasSuffix(".sql"), let underscore = fileName.firstIndex(of: "_") else { return nil }
        let version = String(fileName[..<underscore])
        guard !version.isEmpty, version.allSatisfy(\.isNumber) else { return nil }
        self.version = version
        self.name = fileName
        self.sql = sql
    }

    /// The top-level `Migrations/*.sql`, compiled into the binary at build time (the
    /// EmbedFiles plugin), so a binary copied anywhere can migrate.
    public static func embedded() throws -> [Migration] {
        try validated(EmbeddedMigrations.files.map { file in
            guard let migration = Migration(fileName: file.name, sql: file.contents) else {
                throw PaymentsError.migrationsMissing("\(file.name) is not named NNNN_description.sql")
            }
            return migration
        }, source: "the migrations built into payments")
    }

    public static func load(from folder: URL) throws -> [Migration] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw PaymentsError.migrationsMissing("cannot list \(folder.path): \(error.localizedDescription)")
        }
        let migrations = try names.filter { $0.hasSuffix(".sql") }.sorted().map { name -> Migration in
            let sql = try String(contentsOf: folder.appendingPathComponent(name), encoding: .utf8)
            guard let migration = Migration(fileName: name, sql: sql) else {
                throw PaymentsError.migrationsMissing("\(name) is not named NNNN_description.sql")
            }
            return migration
        }
        return try validated(migrations, source: folder.path)
    }

    static func validated(_ migrations: [Migration], source: String) throws -> [Migration] {
        guard !migrations.isEmpty else { throw PaymentsError.migrationsMissing("no .sql files in \(source)") }
        let versions = migrations.map(\.version)
        if Set(versions).count != versions.count {
            throw PaymentsError.migrationsMissing("two files share a version number in \(source)")
        }
        return migrations.sorted { $0.name < $1.name }
    }
}
