import ArgumentParser
import Foundation
import PaymentsCore

/// `payments cancel ID…`: the API's cancel, for operators (and the one way to cancel a
/// payment whose request may have left: `payment_queue_finish` refuses those).
struct CancelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cancel",
        abstract: "Ask to cancel payments by id: cancelled now if no request ever left for them, else once the gateway proves no charge (a charged one ends succeeded).",
        discussion: "Prints one line per id. Exit 0 when every id is cancelled or pending, 1 when any is unknown, already charged (too late) or failed.")

    @OptionGroup var db: DatabaseOptions
    @Argument(help: "Payment ids.") var ids: [String]
    @Option(name: .customLong("margin"), help: "Seconds after a payment's last request deadline before the gateway's \"no charge\" is trusted (clock skew and in-flight writes; 1 to 600).")
    var margin: Double = WorkerConfiguration().settleMargin.seconds

    func validate() throws {
        guard !ids.isEmpty else { throw ValidationError("give at least one payment id") }
        guard ids.count <= 10_000 else { throw ValidationError("at most 10,000 ids at once, got \(ids.count)") }
        for id in ids where Int64(id).map({ $0 <= 0 }) ?? true {
            throw ValidationError("payment ids are positive integers, got '\(id.prefix(40))'")
        }
        guard margin.isFinite, (1...600).contains(margin) else { throw ValidationError("--margin must be from 1 to 600 seconds") }
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.cancel")
            let database = try db.makeDatabase(logger: logger, writePool: 1, readPool: 1)
            try await database.checkReachable()
            let numbers = ids.compactMap { Int64($0) }
            let outcomes = try await database.run {
                try await JobStore(client: database.write, logger: logger).cancel(numbers, margin: .seconds(fractional: margin))
            }
            var refused = 0
            for id in numbers {
                switch outcomes[id] {
                case nil: refused += 1; print("\(id)\tnot found")
                case .cancelled?: print("\(id)\tcancelled")
                case .pending?: print("\(id)\tpending: cancelled once the gateway proves no charge (succeeded if it was charged)")
                case .finished(.cancelled)?: print("\(id)\tcancelled (already)")
                case .finished(.succeeded)?: refused += 1; print("\(id)\ttoo late: charged, succeeded")
                case let .finished(state)?: refused += 1; print("\(id)\t\(state.rawValue): cannot be cancelled")
                }
            }
            if refused > 0 { throw ExitCode(1) }
        }
    }
}
