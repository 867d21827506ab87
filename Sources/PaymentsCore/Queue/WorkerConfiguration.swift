import Foundation

/// How one `serve` process works its queue; validated before the pool starts.
public struct WorkerConfiguration: Sendable, Equatable {
    /// Written into `lease_owner`: host, pid and a random tag, unique per process.
    public var owner: String
    /// Jobs in flight at once (claimed and not yet recorded).
    public var concurrency: Int = 1_000
    /// Most jobs one claim statement takes.
    public var batchSize: Int = 500
    public var lease: Duration = .seconds(30)
    /// Idle polling starts here after work was found and backs off to `idlePollMax` once no
    /// claim found work for `idlePollPatience` (see `IdlePoll`).
    public var idlePollMin: Duration = .milliseconds(5)
    /// The shortest wait, once claims find ~1,000 jobs a second or more (see `IdlePoll`).
    public var idlePollBusyMin: Duration = .milliseconds(1)
    public var idlePollMax: Duration = .milliseconds(40)
    public var idlePollPatience: Duration = .seconds(1)
    public var reapInterval: Duration = .seconds(1)
    /// Most outcomes one completion statement records.
    public var completionBatch: Int = 2_000
    public var completers: Int = 2
    /// After SIGTERM: how long in-flight gateway calls may take before they are abandoned
    /// (their jobs are released back to the queue).
    public var shutdownTimeout: Duration = .seconds(10)
    public var backoff = Backoff()
    /// Seed of the retry jitter (serve's `--seed`): a seed replays the same delays.
    public var jitterSeed: UInt64 = 1
    public var statsInterval: Duration = .seconds(5)
    /// Longest a claim or completion statement may take before it counts as failed and is
    /// retried: a query stuck behind a restarting pooler must not wedge the pool. Enforced
    /// by the client and by the server (SET LOCAL per transaction; the claim and completion
    /// functions bound themselves, migration 0022). Default: 15 s or half the lease,
    /// whichever is less.
    public var statementTimeout: Duration?
    /// A job whose lease was lost this many times goes to `reconciling` (asked about before it
    /// runs again) instead of running again at once.
    public var maxLeaseLosses = 3

    /// How often the reconciler looks for due `reconciling` jobs, and how long it waits
    /// before asking again about one whose outcome the gateway does not know yet.
    public var reconcileInterval: Duration = .seconds(1)
    public var reconcileRecheck: Duration = .seconds(5)
    /// How long the reconciler leaves a job it took before another may take it: longer
    /// than its lookup (a gateway timeout) and the write of the answer, so two reconcilers
    /// do not ask at once. (A late answer would be fenced off anyway: each take raises the claim.)
    public var effectiveReconcileRecheck: Duration { max(reconcileRecheck, effectiveGatewayTimeout + effectiveStatementTimeout * 2) }
    /// Margin for clocks and in-flight writes at the gateway, added before a job's
    /// "no charge" is trusted.
    public var settleMargin: Duration = .seconds(2)
    /// Longest one gateway call may take; then its outcome is unknown and the job is
    /// retried with the same key (the gateway deduplicates). Default: half the lease.
    public var gatewayTimeout: Duration?

    /// Leases are extended this often, and each extension may take this long: two
    /// chances to extend fit in every lease, so one stalled heartbeat cannot let the
    /// leases of the whole process expire.
    public var heartbeatInterval: Duration { lease / 6 }
    public var heartbeatTimeout: Duration { lease / 6 }
    /// A beat extends the leases that end within this: the first beat that finds a lease
    /// inside it starts at most a timeout and an interval after the last that did not, so
    /// the lease has over `lease * 7 / 12` left, room for that beat and the next (done at
    /// most two timeouts and an interval, `lease / 2`, after it starts) with `lease / 12`
    /// to spare: the two chances above. Claims younger than `lease / 12` are not locked.
    public var leaseRenewalWindow: Duration { lease * 11 / 12 }
    /// Leases one heartbeat transaction extends (and locks) at most.
    public var leaseExtensionBatch = 1_000
    public var effectiveGatewayTimeout: Duration { gatewayTimeout ?? lease / 2 }
    public var effectiveStatementTimeout: Duration { statementTimeout ?? min(.seconds(15), lease / 2) }
    /// Longest a job is held by one claim: its gateway call, the lookup after it, and the
    /// writes of its outcome. Past it the heartbeat stops renewing the lease.
    public var maxHold: Duration { effectiveGatewayTimeout * 2 + effectiveStatementTimeout * 4 + lease }

    public init(owner: String = WorkerConfiguration.defaultOwner()) {
        self.owner = owner
    }

    public static func defaultOwner() -> String {
        "\(ProcessInfo.processInfo.hostName)/\(ProcessInfo.processInfo.processIdentifier)/\(String(UInt32.random(in: 0 ... .max), radix: 36))"
    }

    /// Every timing rule of a worker, checked here and only here (WorkerConfigurationTests
    /// holds one case per rule): a bad flag is a usage error before anything starts.
    public func validated() throws(PaymentsError) -> Self {
        guard backoff.base > .zero, backoff.cap >= backoff.base, backoff.cap <= .seconds(3600) else {
            throw .invalidOption("--retry-base-ms must be > 0 and <= --retry-cap-ms (at most 3,600,000)")
        }
        guard statsInterval >= .milliseconds(100), statsInterval <= .seconds(86_400) else {
            throw .invalidOption("--stats-interval must be from 0.1 to 86,400")
        }
        guard (1...100_000).contains(concurrency) else { throw .invalidOption("--concurrency must be from 1 to 100,000, got \(concurrency)") }
        guard (1...100_000).contains(leaseExtensionBatch) else { throw .invalidOption("the lease extension batch must be from 1 to 100,000, got \(leaseExtensionBatch)") }
        guard (1...10_000).contains(batchSize) else { throw .invalidOption("--batch-size must be from 1 to 10,000, got \(batchSize)") }
        guard lease >= .seconds(1), lease <= .seconds(3600) else { throw .invalidOption("--lease must be from 1 to 3600 seconds") }
        guard shutdownTimeout >= .zero, shutdownTimeout <= .seconds(600) else { throw .invalidOption("--shutdown-timeout must be from 0 to 600 seconds") }
        let statement = effectiveStatementTimeout
        guard statement >= .milliseconds(100), statement <= .seconds(600) else {
            throw .invalidOption("--statement-timeout must be from 0.1 to 600 seconds")
        }
        // A completion that times out must be retried well within the lease, or the job
        // is re-run although its outcome was known.
        guard statement <= lease / 2 else {
            throw .invalidOption("--statement-timeout (\(statement.seconds) s) must be at most half of --lease (\(lease.seconds) s): a worker must be able to retry a stalled write before its lease runs out")
        }
        guard heartbeatInterval + heartbeatTimeout < lease else {
            throw .invalidOption("the lease heartbeat (every \(heartbeatInterval.seconds) s, up to \(heartbeatTimeout.seconds) s each) must fit in --lease (\(lease.seconds) s)")
        }
        guard (1...100).contains(maxLeaseLosses) else { throw .invalidOption("--max-lease-losses must be from 1 to 100, got \(maxLeaseLosses)") }
        let gateway = effectiveGatewayTimeout
        guard gateway >= .milliseconds(10) else { throw .invalidOption("--gateway-timeout must be at least 0.01 seconds") }
        // A charge must end (answered or abandoned) before its job's lease could run out.
        guard gateway < lease else {
            throw .invalidOption("--gateway-timeout (\(gateway.seconds) s) must be below --lease (\(lease.seconds) s): a gateway call must end before its job's lease can expire and another worker take the job")
        }
        return self
    }
}
