import Testing
import PaymentsCore

@Suite struct DatabaseURLTests {
    @Test func parsesTheSeedForm() throws {
        let url = try DatabaseURL(parsing: "db_user:db_password@pgbouncer-write:6432/resilient_payment_processor?sslmode=disable")
        #expect(url == DatabaseURL(user: "db_user", password: "db_password", host: "pgbouncer-write", port: 6432,
                                   database: "resilient_payment_processor", sslMode: .disable))
    }

    @Test func parsesPostgresURLs() throws {
        let url = try DatabaseURL(parsing: "postgresql://u%40x:p%3Aw%2F@127.0.0.1:6433/db?sslmode=require&application_name=x")
        #expect(url.user == "u@x")
        #expect(url.password == "p:w/")
        #expect(url.port == 6433)
        #expect(url.sslMode == .require)
        let noPort = try DatabaseURL(parsing: "postgres://u@localhost/db")
        #expect(noPort.port == 5432)
        #expect(noPort.password == nil)
        #expect(noPort.sslMode == .prefer)
        let ipv6 = try DatabaseURL(parsing: "postgres://u:p@[::1]:7000/db")
        #expect(ipv6.host == "::1")
        #expect(ipv6.port == 7000)
    }

    @Test(arguments: [
        "", "nonsense", "mysql://u:p@h:1/db", "u:p@h:0/db", "u:p@h:99999/db", "u:p@h:abc/db",
        "u:p@h:5432", "u:p@h:5432/", ":p@h:5432/db", "u:p@:5432/db", "u:p@h:5432/db?sslmode=sometimes",
        "u:p@h:5432/db?colour=blue",
    ])
    func rejectsMalformedDSNs(_ text: String) {
        #expect(throws: PaymentsError.self) { try DatabaseURL(parsing: text) }
    }

    @Test func neverPrintsThePassword() throws {
        let url = try DatabaseURL(parsing: "postgres://u:secret@h:1/db")
        #expect(!url.description.contains("secret"))
        do {
            _ = try DatabaseURL(parsing: "postgres://u:secret@h:notaport/db")
            Issue.record("expected an error")
        } catch {
            #expect(!error.description.contains("secret"))
        }
    }

    @Test func flagBeatsEnvironmentBeatsDefault() throws {
        let env = ["WRITE_DSN": "postgres://env:p@envhost:1/db"]
        let fromFlag = try ConnectionSettings.resolve(flag: "postgres://flag:p@flaghost:2/db", environmentKey: "WRITE_DSN", environment: env, fallback: ConnectionSettings.defaultWriteDSN)
        #expect(fromFlag.host == "flaghost")
        let fromEnv = try ConnectionSettings.resolve(flag: nil, environmentKey: "WRITE_DSN", environment: env, fallback: ConnectionSettings.defaultWriteDSN)
        #expect(fromEnv.host == "envhost")
        let fallback = try ConnectionSettings.resolve(flag: nil, environmentKey: "WRITE_DSN", environment: [:], fallback: ConnectionSettings.defaultWriteDSN)
        #expect(fallback.port == 6432)
        #expect(fallback.database == "resilient_payment_processor")
    }

    /// A serve on the local topology's default poolers finds HAProxy's stats page and the
    /// poolers' stats user as the demo passes them; on any other database it assumes nothing.
    @Test func observabilityDefaultsOnlyForTheLocalTopology() throws {
        let local = ConnectionSettings.observabilityDefaults(write: try DatabaseURL(parsing: ConnectionSettings.defaultWriteDSN),
                                                             read: try DatabaseURL(parsing: ConnectionSettings.defaultReadDSN))
        #expect(local == ConnectionSettings.localObservability)
        #expect(local?.haproxyStatsURL == "http://127.0.0.1:8404/;csv")
        let offset = try DatabaseURL(parsing: "postgres://db_user:db_password@127.0.0.1:6532/resilient_payment_processor?sslmode=disable")
        #expect(ConnectionSettings.observabilityDefaults(write: offset, read: try DatabaseURL(parsing: ConnectionSettings.defaultReadDSN)) == nil)
        let remote = try DatabaseURL(parsing: "postgres://app:secret@db.internal:6432/resilient_payment_processor?sslmode=require")
        #expect(ConnectionSettings.observabilityDefaults(write: remote, read: remote) == nil)
    }

    /// Where serve listens for new payments: the flag, else PRIMARY_DSN, else the local
    /// primary only for the local topology's default write pooler; `none` turns it off.
    @Test func theListenersPrimaryIsGivenOrLocalOrNone() throws {
        let localWrite = try DatabaseURL(parsing: ConnectionSettings.defaultWriteDSN)
        let remote = try DatabaseURL(parsing: "postgres://app:secret@db.internal:6432/resilient_payment_processor?sslmode=require")
        #expect(try ConnectionSettings.primary(flag: nil, environment: [:], write: localWrite)?.port == 5432)
        #expect(try ConnectionSettings.primary(flag: nil, environment: [:], write: remote) == nil)
        let env = ["PRIMARY_DSN": "postgres://u:p@haproxy:5000/db"]
        #expect(try ConnectionSettings.primary(flag: nil, environment: env, write: remote)?.host == "haproxy")
        #expect(try ConnectionSettings.primary(flag: "postgres://u:p@flag:5432/db", environment: env, write: remote)?.host == "flag")
        #expect(try ConnectionSettings.primary(flag: "none", environment: env, write: localWrite) == nil)
        #expect(try ConnectionSettings.primary(flag: nil, environment: ["PRIMARY_DSN": "none"], write: localWrite) == nil)
        #expect(throws: PaymentsError.self) { try ConnectionSettings.primary(flag: "not a dsn", environment: [:], write: localWrite) }
    }
}
