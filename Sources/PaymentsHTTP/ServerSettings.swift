import PaymentsCore

/// Everything `payments serve` is told: where it listens, which poolers it uses, how its
/// workers and its simulated gateway behave. Parsed by the CLI, used by `buildApplication`.
public struct ServerSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 8080
    public var writeURL: DatabaseURL
    public var readURL: DatabaseURL
    public var writePool = 8
    public var readPool = 8
    /// Nil serves the API only (`--no-workers`).
    public var workers: WorkerConfiguration? = WorkerConfiguration()
    public var gateway = SimulatedGateway.Configuration()
    /// Read from the primary when the read path fails.
    public var readFallback = true

    public init(writeURL: DatabaseURL, readURL: DatabaseURL) {
        self.writeURL = writeURL
        self.readURL = readURL
    }

    /// Range checks of every setting, so a bad flag is a usage error before anything starts.
    public func validated() throws(PaymentsError) -> Self {
        guard (1...65535).contains(port) else { throw .invalidOption("--port must be from 1 to 65535, got \(port)") }
        guard (1...64).contains(writePool), (1...64).contains(readPool) else {
            throw .invalidOption("--write-pool and --read-pool must be from 1 to 64")
        }
        var copy = self
        copy.workers = try workers?.validated()
        copy.gateway = try gateway.validated()
        return copy
    }
}
