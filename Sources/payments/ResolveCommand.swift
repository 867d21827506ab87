import ArgumentParser
import Foundation
import Logging
import PaymentsCore
import PaymentsHTTP

/// `payments resolve ID --refund|--recheck`: the operator's way out of a payment held in
/// `reconciling` (the gateway holds a charge under its key that is not its payment's, or an
/// adopted payment's charge is gone from the provider).
struct ResolveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resolve",
        abstract: "Settle a payment held for an operator: --refund has the provider refund the charge under its key that is not the payment's, then cancels the payment; --cancel cancels an adopted payment whose charge the provider no longer holds; --recheck hands it back to the reconciler.",
        discussion: "Only payments held for an operator (payments status lists them). Exit 0 when settled, 1 otherwise, saying why.")

    @OptionGroup var db: DatabaseOptions
    @Argument(help: "The held payment's id.") var id: Int64
    @Flag(help: "Refund the mismatched charge at the provider (--gateway-url), then cancel the payment.") var refund = false
    @Flag(help: "Ask the gateway again now (after the provider corrected its record).") var recheck = false
    @Flag(help: "Cancel an adopted payment held because the provider no longer holds its charge (checked at --gateway-url first: none, or refunded).")
    var cancel = false
    @Option(name: .customLong("gateway-url"), help: "The payment provider (env GATEWAY_URL).")
    var gatewayURL: String? = ProcessInfo.processInfo.environment["GATEWAY_URL"].flatMap { $0.isEmpty ? nil : $0 }

    func validate() throws {
        guard id > 0 else { throw ValidationError("the payment id is a positive integer") }
        guard [refund, recheck, cancel].filter({ $0 }).count == 1 else { throw ValidationError("give exactly one of --refund, --cancel or --recheck") }
        if refund || cancel, gatewayURL == nil { throw ValidationError("--\(refund ? "refund" : "cancel") needs --gateway-url (or GATEWAY_URL)") }
    }

    /// An adopted payment whose charge the provider no longer holds: cancelled once the
    /// provider confirms it holds none (or refunded it), so the payer was not left charged.
    func cancelAdopted(_ held: (key: String, payment: Payment, reason: HeldReason), gateway: HTTPGateway, store: JobStore) async throws -> String {
        guard held.reason == .adoptedChargeMissing else {
            throw Refused("payment \(id) is held for \(held.reason.rawValue), not adopted_charge_missing: use --refund or --recheck")
        }
        let record = try await gateway.lookup(idempotencyKey: held.key)
        if let record, !record.isRefunded {
            throw Refused("the gateway holds charge \(record.chargeID) under payment \(id)'s key again: use --recheck to post it")
        }
        let note = record.map { "adopted payment's charge \($0.chargeID) was refunded at the provider; cancelled by an operator" }
            ?? "the provider holds no charge for this adopted payment's key; cancelled by an operator"
        let state = try await store.resolveHeld(id, as: .cancelled, note: note)
        guard state == .cancelled else { throw PaymentsError.database("payment \(id) changed meanwhile; nothing was done") }
        return "\(id)\tcancelled: \(note)"
    }

    func refundAndCancel(_ held: (key: String, payment: Payment, reason: HeldReason), gateway: HTTPGateway, store: JobStore) async throws -> String {
        guard held.reason == .chargeMismatch else {
            throw Refused("payment \(id) is held for \(held.reason.rawValue): its charge is its own, not another payment's; use --cancel or --recheck")
        }
        guard let record = try await gateway.lookup(idempotencyKey: held.key) else {
            throw Refused("the gateway holds no charge for payment \(id)'s key any more: use --recheck")
        }
        guard !record.isCharge(of: held.key, for: held.payment) || record.isRefunded else {
            throw Refused("the gateway's charge \(record.chargeID) is payment \(id)'s own (\(record.amountMinor) \(record.currency)): not refunding; use --recheck to post it")
        }
        let refunded = record.isRefunded ? record : try await gateway.refund(idempotencyKey: held.key, chargeID: record.chargeID)
        let state = try await store.resolveHeld(id, as: .cancelled, note: "charge \(refunded.chargeID) (\(refunded.amountMinor) \(refunded.currency)) under this payment's key was not its own and was refunded at the provider; payment cancelled: make it again with a new key")
        guard state == .cancelled else { throw PaymentsError.database("payment \(id) changed meanwhile; the refund of \(refunded.chargeID) stands") }
        return "\(id)\tcancelled: charge \(refunded.chargeID) (\(refunded.amountMinor) \(refunded.currency)) refunded at the provider"
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.resolve")
            let database = try db.makeDatabase(logger: logger, writePool: 1, readPool: 1)
            try await database.checkReachable()
            let message = try await database.run { () -> String in
                let store = JobStore(client: database.write, logger: logger)
                guard let held = try await store.heldPayment(id) else {
                    throw Refused("payment \(id) is not held for an operator (see payments status)")
                }
                if recheck {
                    _ = try await store.resolveHeld(id, as: .recheck, note: "an operator asked the gateway again")
                    return "\(id)\treconciling: the reconciler asks the gateway again now"
                }
                let gateway = HTTPGateway(baseURL: gatewayURL ?? "", timeout: .seconds(10), connections: 1, logger: logger)
                do {
                    let message = cancel ? try await cancelAdopted(held, gateway: gateway, store: store)
                                         : try await refundAndCancel(held, gateway: gateway, store: store)
                    try await gateway.shutdown()
                    return message
                } catch {
                    try? await gateway.shutdown()
                    throw error
                }
            }
            print(message)
        }
    }
}

/// Why `resolve` settled nothing (exit 1): the payment's or the gateway's state, not usage.
struct Refused: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
