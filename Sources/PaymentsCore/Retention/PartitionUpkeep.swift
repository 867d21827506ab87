import Logging
import ServiceLifecycle

/// Keeps the history's and the ledger's partitions created ahead of the ids intake gives
/// (`JobStore.addPartitions`), at start and then every minute, in every serve: one that
/// serves the API only takes payments too, and a payment whose range has no partition
/// lands in the default one, whose rows then block creating that range.
public struct PartitionUpkeep: Service {
    let store: JobStore
    let interval: Duration
    let logger: Logger

    /// - Parameter store: its statement timeout bounds each of the two statements.
    public init(store: JobStore, every interval: Duration = .seconds(60), logger: Logger) {
        self.store = store
        self.interval = interval
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown { await self.keepAhead() }
    }

    func keepAhead() async {
        // Two statements, each bounded on the server; the client's bound covers a pooler
        // that does not answer at all.
        let bound = (store.statementTimeout + .seconds(1)) * 2
        while !Task.isCancelled {
            do {
                _ = try await withTimeout(bound) { [store] in try await store.addPartitions(ahead: 2) }
            } catch {
                logger.warning("creating partitions failed; trying again in a minute", metadata: ["error": "\(describe(error))"])
            }
            do { try await Task.sleep(for: interval) } catch { return }
        }
    }
}
