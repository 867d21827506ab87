import ArgumentParser
import Foundation
import PaymentsCore

struct EnqueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enqueue",
        abstract: "Insert payment jobs in bulk through pgbouncer-write.",
        discussion: """
            Either --count N realistic generated jobs, or --input FILE of JSON Lines (one payment per line:
            {"idempotency_key": "...", "amount_minor": 1234, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}
            plus optional "priority" and "max_attempts"; '-' reads standard input). A file is validated whole
            and inserted in one transaction: one bad line and nothing is inserted.
            """)

    @OptionGroup var db: DatabaseOptions

    @Option(help: "Generate and insert this many jobs (1 to 10,000,000).")
    var count: Int?

    @Option(help: "JSON Lines file to insert ('-' for standard input).")
    var input: String?

    @Option(name: .customLong("key-prefix"), help: "Idempotency keys are <prefix>-<n> (generated) or <prefix>-<line> (file lines without a key). Default: a new random prefix per run.")
    var keyPrefix: String?

    @Option(name: .customLong("batch-size"), help: "Rows per INSERT statement (100 to 50,000; default 5,000). With --rate, 1 to 50,000, default a fiftieth of the rate (at most 5,000).")
    var batchSize: Int?

    @Option(help: "Generated jobs per second to hold to, for load tests (1 to 1,000,000): batches start on a steady schedule instead of as fast as possible.")
    var rate: Double?

    @Option(help: "Batches in flight at once, one pooled connection each (1 to 32).")
    var connections: Int = 4

    @Option(help: "Seed for generated data.")
    var seed: UInt64 = 42

    @Option(help: "Seconds one batch (or the whole file) may take, waiting for a connection included, before enqueue gives up with an error (1 to 3600).")
    var timeout: Double = 30

    @Option(name: .customLong("give-up-after"), help: "Retry budget in seconds of each payment that names none (a line's give_up_after_seconds wins): until then our own faults only delay it (1 to 604,800).")
    var giveUpAfter: Int = Int(PaymentRequest.defaultGiveUpAfterSeconds)

    func validate() throws {
        switch (count, input) {
        case (nil, nil): throw ValidationError("give --count N or --input FILE")
        case (.some, .some): throw ValidationError("give either --count or --input, not both")
        case let (n?, nil) where !(1...10_000_000).contains(n): throw ValidationError("--count must be from 1 to 10,000,000, got \(n)")
        default: break
        }
        if let rate {
            guard count != nil else { throw ValidationError("--rate paces generated jobs: give it with --count") }
            guard rate.isFinite, (1...1_000_000).contains(rate) else { throw ValidationError("--rate must be from 1 to 1,000,000 jobs per second, got \(rate)") }
            if let batchSize, !(1...50_000).contains(batchSize) { throw ValidationError("--batch-size must be from 1 to 50,000 with --rate, got \(batchSize)") }
        } else if let batchSize, !(100...50_000).contains(batchSize) {
            throw ValidationError("--batch-size must be from 100 to 50,000, got \(batchSize)")
        }
        guard PaymentRequest.giveUpAfterRange.contains(Int32(clamping: giveUpAfter)) else { throw ValidationError("--give-up-after must be from 1 to 604,800 seconds (7 days), got \(giveUpAfter)") }
        guard timeout.isFinite, (1...3600).contains(timeout) else { throw ValidationError("--timeout must be from 1 to 3600 seconds, got \(timeout)") }
        guard (1...32).contains(connections) else { throw ValidationError("--connections must be from 1 to 32, got \(connections)") }
        if let keyPrefix, !PaymentRequest.isValidIdempotencyKey(keyPrefix) || keyPrefix.count > 200 {
            throw ValidationError("--key-prefix must be 1-200 printable ASCII characters without spaces")
        }
    }

    /// Paced batches are small so that jobs arrive evenly (50 batches a second).
    var effectiveBatchSize: Int {
        if let batchSize { return batchSize }
        guard let rate else { return Enqueuer.defaultBatchSize }
        return min(Enqueuer.defaultBatchSize, max(1, Int(rate / 50)))
    }

    func run() async throws {
        try await runReportingErrors {
            let logger = try db.makeLogger("payments.enqueue")
            let database = try db.makeDatabase(logger: logger, writePool: connections, readPool: 1)
            // Read the file before touching the database: a missing file is the first thing to report.
            let fileData = try input.map(Self.readInput)
            // Through a failover (HA mode) the pooler answers but cannot log in for a few
            // seconds: wait for it, up to the enqueue's timeout (before the batches' own).
            try await database.checkReachable(patience: .milliseconds(Int64(timeout * 1000)))
            let display = ProgressDisplay(label: "enqueue")
            let summary = try await database.run {
                var enqueuer = Enqueuer(client: database.write, logger: logger, batchSize: effectiveBatchSize, connections: connections,
                                        timeout: .milliseconds(Int64(timeout * 1000)), endpoint: database.writeURL.endpoint)
                enqueuer.giveUpAfterSeconds = Int32(giveUpAfter)
                let report: @Sendable (Enqueuer.Progress) -> Void = {
                    display.update(done: $0.done, total: $0.total, elapsed: $0.elapsed)
                }
                if let count {
                    let prefix = keyPrefix ?? "gen-\(Int(Date().timeIntervalSince1970))-\(UInt32.random(in: .min ... .max))"
                    // Said first: after an error some batches may be in, and the same prefix
                    // and seed fill in the rest without doubling any.
                    FileHandle.standardError.write(Data("enqueue: key prefix \(prefix), seed \(seed) (re-run with --key-prefix \(prefix) --seed \(seed) --batch-size \(effectiveBatchSize) to resume after an error: a batch's payments depend on its size)\n".utf8))
                    return try await enqueuer.enqueueGenerated(count: count, keyPrefix: prefix, seed: seed, rate: rate, progress: report)
                }
                let currencies = try await enqueuer.retryingWithinDeadline(what: "reading the currencies") {
                    try await Catalog.currencies(database.write, logger: logger)
                }
                let parsed = JSONLinesParser.parse(fileData ?? Data(), currencies: currencies, keyPrefix: keyPrefix)
                guard parsed.errors.isEmpty else { throw PaymentsError.invalidInput(lines: parsed.errors, total: parsed.total) }
                guard !parsed.payments.isEmpty else { throw PaymentsError.emptyInput }
                var summary = try await enqueuer.enqueueFile(parsed.payments, progress: report)
                summary.total += parsed.repeatedInFile
                summary.duplicates += parsed.repeatedInFile
                return summary
            }
            display.finish()
            print("enqueued \(summary.total.grouped) jobs: \(summary.inserted.grouped) new, \(summary.duplicates.grouped) duplicates, "
                + "\(String(format: "%.2f", summary.seconds)) s, \(Int(summary.jobsPerSecond).grouped) jobs/s")
            if let rate {
                // Whether the load asked for was the load given: a database slower than
                // the rate shows here rather than as a quietly lower rate.
                print("paced at \(Int(rate).grouped) jobs/s in batches of \(effectiveBatchSize.grouped); batches started at most "
                    + "\(String(format: "%.1f", summary.behindSchedule.seconds * 1000)) ms behind their time")
            }
        }
    }

    static func readInput(_ path: String) throws -> Data {
        do {
            if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
            return try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PaymentsError.inputUnreadable(path: path, reason: (error as NSError).localizedDescription)
        }
    }
}
