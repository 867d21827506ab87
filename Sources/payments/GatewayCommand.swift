import ArgumentParser
import Foundation
import Logging
import PaymentsCore
import PaymentsHTTP
import PaymentsSimulator
import ServiceLifecycle

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "The simulated payment service provider as its own HTTP server: charges deduplicated by Idempotency-Key, durable in a journal, with injectable faults.")

    @Option(help: "Address to listen on.") var host: String = "127.0.0.1"
    @Option(help: "Port (the topology's default: 8090 + port offset).") var port: Int = 8090
    @Option(help: "The charge journal: every accepted charge, fsynced before it is acknowledged; read back at start.")
    var journal: String
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.") var logLevel: String = "info"

    @Option(name: .customLong("latency-ms"), help: "Mean latency of a request.") var latencyMs: Double = 20
    @Option(name: .customLong("jitter-ms"), help: "Latency jitter, +/- (default: half the latency).") var jitterMs: Double?
    @Option(name: .customLong("hang-rate"), help: "Share of requests that stall for --hang-seconds first (0-1).") var hangRate: Double = 0
    @Option(name: .customLong("hang-seconds"), help: "How long a hanging request stalls.") var hangSeconds: Double = 120
    @Option(name: .customLong("lost-answer-rate"), help: "Share of charges made and then answered 503 (0-1).") var lostAnswerRate: Double = 0
    @Option(name: .customLong("error-rate"), help: "Share of requests answered 503 without charging (0-1).") var errorRate: Double = 0
    @Option(name: .customLong("decline-rate"), help: "Share of idempotency keys declined, every time (0-1).") var declineRate: Double = 0
    @Option(help: "Seed of every fault draw.") var seed: UInt64 = 1

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level must be one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))") }
        _ = try usageChecked { try settings().validated() }
    }

    func settings() -> GatewaySettings {
        var settings = GatewaySettings(journalPath: journal)
        settings.host = host
        settings.port = port
        var faults = GatewayFaults()
        faults.latencyMillis = latencyMs
        faults.jitterMillis = jitterMs ?? latencyMs / 2
        faults.hangRate = hangRate
        faults.hangSeconds = hangSeconds
        faults.lostAnswerRate = lostAnswerRate
        faults.errorRate = errorRate
        faults.declineRate = declineRate
        faults.seed = seed
        settings.faults = faults
        return settings
    }

    func run() async throws {
        try await runReportingErrors {
            var logger = Logger(label: "payments.gateway")
            logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
            let settings = settings()
            OpenFileLimit.raiseToHardLimit()
            let server = try GatewayServer(settings, logger: logger)
            let services = ServiceGroup(configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
            do {
                try await services.run()
            } catch where isAddressInUse(error) {
                throw PaymentsError.portInUse(host: settings.host, port: settings.port)
            }
            logger.info("gateway stopped cleanly")
        }
    }
}
