import PaymentsCore
import Testing

/// Every timing rule of a worker in one table: the rule, a configuration that breaks it,
/// and the words of its error (a usage error of `serve`, exit 64). The defaults pass.
@Suite struct WorkerConfigurationTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let rule: String
        let change: @Sendable (inout WorkerConfiguration) -> Void
        let message: String
        var testDescription: String { rule }
    }

    static let cases: [Case] = [
        Case(rule: "retry base above zero", change: { $0.backoff = Backoff(base: .zero, cap: .seconds(1)) }, message: "--retry-base-ms"),
        Case(rule: "retry cap at least the base", change: { $0.backoff = Backoff(base: .seconds(2), cap: .seconds(1)) }, message: "--retry-base-ms"),
        Case(rule: "retry cap at most an hour", change: { $0.backoff = Backoff(base: .seconds(1), cap: .seconds(3601)) }, message: "3,600,000"),
        Case(rule: "stats interval from 0.1 s", change: { $0.statsInterval = .milliseconds(50) }, message: "--stats-interval"),
        Case(rule: "concurrency from 1", change: { $0.concurrency = 0 }, message: "--concurrency"),
        Case(rule: "batch size at most 10,000", change: { $0.batchSize = 10_001 }, message: "--batch-size"),
        Case(rule: "lease from 1 s", change: { $0.lease = .milliseconds(500) }, message: "--lease"),
        Case(rule: "lease at most an hour", change: { $0.lease = .seconds(3601) }, message: "--lease"),
        Case(rule: "shutdown timeout at most 600 s", change: { $0.shutdownTimeout = .seconds(601) }, message: "--shutdown-timeout"),
        Case(rule: "statement timeout from 0.1 s", change: { $0.statementTimeout = .milliseconds(50) }, message: "--statement-timeout"),
        Case(rule: "statement timeout at most half the lease", change: { $0.lease = .seconds(10); $0.statementTimeout = .seconds(6) },
             message: "at most half of --lease"),
        Case(rule: "max lease losses from 1", change: { $0.maxLeaseLosses = 0 }, message: "--max-lease-losses"),
        Case(rule: "gateway timeout from 10 ms", change: { $0.gatewayTimeout = .milliseconds(5) }, message: "--gateway-timeout"),
        Case(rule: "gateway timeout below the lease", change: { $0.lease = .seconds(10); $0.gatewayTimeout = .seconds(10) },
             message: "must be below --lease"),
    ]

    @Test(arguments: cases) func eachRuleRefusesWithItsMessage(_ test: Case) {
        var configuration = WorkerConfiguration()
        test.change(&configuration)
        do {
            _ = try configuration.validated()
            Issue.record("\(test.rule): accepted")
        } catch {
            #expect(error.description.contains(test.message), "\(test.rule): \(error.description)")
        }
    }

    @Test func theDefaultsPass() throws {
        _ = try WorkerConfiguration().validated()
    }

    @Test func refusesNonsense() {
        var config = WorkerConfiguration(owner: "test")
        config.concurrency = 0
        #expect(throws: PaymentsError.self) { try config.validated() }
        config = WorkerConfiguration(owner: "test")
        config.lease = .milliseconds(10)
        #expect(throws: PaymentsError.self) { try config.validated() }
        config = WorkerConfiguration(owner: "test")
        config.concurrency = 10_000
        #expect((try? config.validated()) != nil)
    }

    /// A lease one beat found outside the renewal window still has two beats to be
    /// extended by, each taking up to its timeout, before it ends; at any lease.
    @Test func aLeaseOutsideTheWindowStillHasTwoBeatsBeforeItEnds() {
        for seconds in [1, 5, 30, 60, 3600] {
            var config = WorkerConfiguration(owner: "test")
            config.lease = .seconds(seconds)
            let (interval, timeout) = (config.heartbeatInterval, config.heartbeatTimeout)
            // At the first beat that finds it inside the window (one beat after the last that did not):
            let leftAtFirstChance = config.leaseRenewalWindow - (timeout + interval)
            let secondChanceDone = timeout + interval + timeout
            #expect(leftAtFirstChance > secondChanceDone, "lease \(seconds) s")
            #expect(config.leaseRenewalWindow < config.lease, "lease \(seconds) s: every claim due at once")
        }
        var config = WorkerConfiguration(owner: "test")
        config.leaseExtensionBatch = 0
        #expect(throws: PaymentsError.self) { try config.validated() }
    }

    /// Timing is safe by construction: the gateway deadline is below the lease, and two
    /// heartbeats (each with its own timeout) fit in every lease.
    @Test func timingIsValidatedTogether() throws {
        var config = WorkerConfiguration(owner: "test")
        config.lease = .seconds(30)
        #expect(config.effectiveGatewayTimeout == .seconds(15))
        #expect((config.heartbeatInterval + config.heartbeatTimeout) * 2 < config.lease)
        config.gatewayTimeout = .seconds(30)
        #expect(throws: PaymentsError.self) { try config.validated() }
        config.gatewayTimeout = .seconds(29)
        #expect((try? config.validated()) != nil)
        config.lease = .seconds(5)
        config.gatewayTimeout = nil
        #expect(config.effectiveGatewayTimeout == .milliseconds(2500))
    }

    /// Flags give seconds as Double: no value may trap on the way to a Duration.
    @Test func durationsFromFlagsNeverOverflow() {
        #expect(Duration.seconds(fractional: 1.5) == .milliseconds(1500))
        #expect(Duration.seconds(fractional: 1e300) > .seconds(3600))
        #expect(Duration.seconds(fractional: -1e300) < .zero)
        #expect(Duration.seconds(fractional: .nan) == .zero)
    }

    @Test func transientErrorClassification() {
        #expect(isTransientDatabaseError(TimeoutError()))
        #expect(!isTransientDatabaseError(PaymentsError.invalidOption("x")))
    }

    /// What a failover shows a client: connections reset (08006), a pooler that cannot
    /// log in yet (08P01), the old leader shutting down (57P01), and a write on a server
    /// connection to the node just demoted (25006). None wrote anything, so all are
    /// retried, and so is a claim or completion whose lock wait outlasted its bound
    /// (55P03, lock_timeout: migrations 0022, 0023); a constraint or a transaction in the wrong
    /// state is not.
    @Test(arguments: [("08006", true), ("08P01", true), ("57P01", true), ("57P03", true), ("40001", true), ("53300", true),
                      ("25006", true), ("55P03", true), ("55000", false), ("25P02", false), ("25001", false), ("23505", false), ("42601", false), ("22P02", false)])
    func transientSQLStates(state: String, transient: Bool) {
        #expect(isTransientSQLState(state) == transient, "\(state)")
    }
}
