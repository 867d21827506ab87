import PaymentsCore

/// A job as the gateway audit compares it: what the database says was charged.
public struct JobCharge: Sendable, Equatable {
    public var key: String
    public var id: Int64
    public var state: JobState
    public var chargeID: String?
    public var amountMinor: Int64
    public var currency: String

    public init(key: String, id: Int64, state: JobState, chargeID: String?, amountMinor: Int64, currency: String) {
        self.key = key
        self.id = id
        self.state = state
        self.chargeID = chargeID
        self.amountMinor = amountMinor
        self.currency = currency
    }
}

/// The gateway's charges against the jobs, as two sets that must match one to one: every
/// charge belongs to exactly one succeeded job (same key, same charge id, same amount and
/// currency), every succeeded job has exactly one charge, no key is charged twice and no
/// job under two keys. Pure, so each way it can fail is shown by a unit test.
public enum ChargeAudit {
    public static func checks(charges: [ChargeRecord], jobs: [JobCharge]) -> [InvariantReport.Check] {
        let chargesByKey = Dictionary(grouping: charges, by: \.key)
        let jobsByKey = Dictionary(grouping: jobs, by: \.key)
        var checks: [InvariantReport.Check] = []

        let doubles = chargesByKey.filter { $0.value.count > 1 }.keys.sorted()
        checks.append(.init(name: "gateway charged each idempotency key at most once", passed: doubles.isEmpty,
                            detail: doubles.isEmpty ? "\(chargesByKey.count) keys charged once each"
                                : "\(doubles.count) keys charged more than once, e.g. \(sample(doubles))"))

        // A refunded charge (an operator's way out of a charge that was not its payment's)
        // is money given back: it needs no succeeded payment, and its payment must not be
        // succeeded.
        let live = charges.filter { !$0.isRefunded }
        let refunded = charges.filter(\.isRefunded)
        let liveByKey = Dictionary(grouping: live, by: \.key)
        var orphaned: [String] = []  // charged, but no succeeded job with this charge
        for charge in live {
            guard let job = jobsByKey[charge.key]?.first, job.state == .succeeded, job.chargeID == charge.chargeID,
                  job.amountMinor == charge.amountMinor, job.currency == charge.currency else {
                orphaned.append(describe(charge, job: jobsByKey[charge.key]?.first))
                continue
            }
        }
        checks.append(.init(name: "every gateway charge is one succeeded job's, same amount and currency", passed: orphaned.isEmpty,
                            detail: orphaned.isEmpty ? "\(live.count) charges match their jobs\(refunded.isEmpty ? "" : " (\(refunded.count) refunded)")"
                                : "\(orphaned.count) charges without their succeeded job, e.g. \(sample(orphaned))"))

        let uncharged = jobs.filter { job in
            job.state == .succeeded && !(liveByKey[job.key] ?? []).contains { $0.chargeID == job.chargeID }
        }.map(\.key).sorted()
        checks.append(.init(name: "every succeeded job was charged at the gateway", passed: uncharged.isEmpty,
                            detail: uncharged.isEmpty ? "\(jobs.filter { $0.state == .succeeded }.count) succeeded jobs each have their charge"
                                : "\(uncharged.count) succeeded jobs without a gateway charge, e.g. \(sample(uncharged))"))

        let refundedButSucceeded = refunded.filter { charge in
            jobsByKey[charge.key]?.contains { $0.state == .succeeded && $0.chargeID == charge.chargeID } ?? false
        }.map(\.key).sorted()
        checks.append(.init(name: "no succeeded job's charge was refunded", passed: refundedButSucceeded.isEmpty,
                            detail: refundedButSucceeded.isEmpty ? "\(refunded.count) refunded charges, none a succeeded job's"
                                : "\(refundedButSucceeded.count) succeeded jobs whose charge was refunded, e.g. \(sample(refundedButSucceeded))"))

        let keysPerJob = Dictionary(grouping: charges, by: \.jobID).filter { Set($0.value.map(\.key)).count > 1 }
        checks.append(.init(name: "no job charged under two keys", passed: keysPerJob.isEmpty,
                            detail: keysPerJob.isEmpty ? "each charged job under one key"
                                : "\(keysPerJob.count) jobs charged under several keys, e.g. job \(keysPerJob.keys.sorted().first ?? 0)"))
        return checks
    }

    static func describe(_ charge: ChargeRecord, job: JobCharge?) -> String {
        guard let job else { return "\(charge.key) (no such job)" }
        return "\(charge.key) (job \(job.id) \(job.state.rawValue), \(job.amountMinor) \(job.currency); charged \(charge.amountMinor) \(charge.currency))"
    }

    static func sample(_ items: [String]) -> String { items.prefix(3).joined(separator: ", ") }
}
