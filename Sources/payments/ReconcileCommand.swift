import ArgumentParser
import Foundation
import Logging
import PaymentsCore
import PaymentsHTTP

/// `payments reconcile [--adopt] [--json]`: the provider's charges against the database.
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Compare the provider's charges (GET /v1/charges?since=, paged) with the database: charges whose key the database does not know, charges whose payment did not succeed, succeeded payments without their charge, amount, currency or charge-id mismatches.",
        discussion: """
            Exit 0 when nothing needs a person, 1 when anything was found (after --adopt: when anything is left), 64 on usage. \
            --adopt re-creates each charged payment the database lost (after a restore to an earlier point) from the provider's \
            record, in reconciling, and settles it succeeded with its postings through the reconciler's fenced completion; a \
            second run adopts nothing. Payments still open (queued, running, reconciling) with a charge settle by themselves: \
            listed, not counted as findings.
            """)

    @OptionGroup var db: DatabaseOptions
    @Option(name: .customLong("gateway-url"), help: "The payment provider (env GATEWAY_URL).")
    var gatewayURL: String? = ProcessInfo.processInfo.environment["GATEWAY_URL"].flatMap { $0.isEmpty ? nil : $0 }
    @Flag(help: "Re-create the payments the database lost from the provider's charges, settled succeeded.") var adopt = false
    @Flag(help: "Print the report as JSON.") var json = false
    @Option(help: "Only charges made and payments finished at or after this time (ISO 8601, e.g. 2026-12-05T00:00:00Z): a day's settlement. Default: everything.")
    var from: String?
    @Option(name: .customLong("page-size"), help: "Charges asked of the provider per page (1-10,000).") var pageSize = 1_000

    func validate() throws {
        guard let gatewayURL, let url = URL(string: gatewayURL), url.scheme == "http" || url.scheme == "https", url.host != nil else {
            throw ValidationError("--gateway-url (or GATEWAY_URL) must be the provider's http(s) URL")
        }
        if let from, Self.parseTime(from) == nil {
            throw ValidationError("--from must be an ISO 8601 time such as 2026-12-05T00:00:00Z")
        }
        guard (1...10_000).contains(pageSize) else { throw ValidationError("--page-size must be from 1 to 10,000") }
    }

    struct Output: Encodable {
        var report: SettlementReport
        var adoption: ProviderReconciliation.Adoption?
        var after: SettlementReport?
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.reconcile")
            let database = try db.makeDatabase(logger: logger, writePool: 2, readPool: 1)
            try await database.checkReachable()
            let gateway = HTTPGateway(baseURL: gatewayURL ?? "", timeout: .seconds(10), connections: 2, logger: logger)
            let output: Output
            do {
                output = try await database.run { () -> Output in
                    let reconciliation = ProviderReconciliation(client: database.write, provider: gateway, pageSize: pageSize, logger: logger)
                    let since = from.flatMap(Self.parseTime)
                    let (report, unknown) = try await reconciliation.compare(from: since)
                    guard adopt else { return Output(report: report) }
                    let reconciler = Reconciler(store: JobStore(client: database.write, logger: logger), gateway: gateway,
                                                configuration: WorkerConfiguration(), metrics: WorkerMetrics(), logger: logger)
                    let adoption = try await reconciliation.adopt(unknown, reconciler: reconciler)
                    return Output(report: report, adoption: adoption, after: try await reconciliation.compare(from: since).report)
                }
                try await gateway.shutdown()
            } catch {
                try? await gateway.shutdown()
                throw error
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(output), as: UTF8.self))
            } else {
                print(Self.table(output.report, title: "provider against database"))
                if let adoption = output.adoption {
                    print("adopted: \(adoption.adopted.count) payments re-created from the provider's charges and settled succeeded"
                          + (adoption.adopted.isEmpty ? "" : " (ids \(adoption.adopted.prefix(20).map(String.init).joined(separator: ", "))\(adoption.adopted.count > 20 ? ", ..." : ""))"))
                    if !adoption.pending.isEmpty { print("not settled yet (a serve's reconciler will): \(adoption.pending.count)") }
                    if !adoption.withoutAccounts.isEmpty { print("cannot adopt (the provider's record names no accounts): \(adoption.withoutAccounts.count)") }
                    if !adoption.refused.isEmpty {
                        print("not adopted (the provider's record is not a payment intake would take): \(adoption.refused.count)")
                        for refusal in adoption.refused.prefix(10) { print("    \(refusal.key)\t\(refusal.chargeID)\t\(refusal.reason)") }
                    }
                }
                if let after = output.after { print(Self.table(after, title: "after adoption")) }
            }
            if !(output.after ?? output.report).isClean { throw ExitCode.failure }
        }
    }

    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text)
    }

    static func table(_ report: SettlementReport, title: String) -> String {
        var lines = ["\(title): \(report.chargesListed) charges listed, \(report.succeededChecked) succeeded payments checked"]
        let sections: [(String, [SettlementReport.Finding])] = [
            ("charges whose key the database does not know", report.unknownKeys),
            ("charges whose payment did not succeed", report.notSucceeded),
            ("succeeded payments without their charge", report.succeededWithoutCharge),
            ("amount, currency or charge id mismatches", report.mismatches),
            ("open payments with a charge (settle by themselves)", report.open),
        ]
        for (name, findings) in sections {
            lines.append(String(format: "  %-52@ %d", name as NSString, findings.count))
            for f in findings.prefix(10) {
                lines.append("    \(f.key)\t\(f.paymentID.map(String.init) ?? "-")\t\(f.chargeID ?? "-")\t\(f.detail)")
            }
            if findings.count > 10 { lines.append("    ... \(findings.count - 10) more (--json lists all)") }
        }
        lines.append(report.isClean ? "clean" : "FOUND discrepancies")
        return lines.joined(separator: "\n")
    }
}
