@testable import PaymentsCore
import Testing

/// Each transaction's settings go in one statement: the statement timeout (bound, in
/// milliseconds), then what its planner settings turn off, all local to the transaction.
@Suite struct PlannerSettingsTests {
    @Test func eachPlannerTurnsOffItsOwnSettingsAfterTheTimeout() {
        let standard = JobStore.transactionSettings(.standard, timeout: .seconds(15))
        #expect(standard.sql == "SELECT set_config('statement_timeout', $1, true)")
        #expect(standard.binds.count == 1)
        #expect(JobStore.transactionSettings(.batchJoinByPrimaryKey, timeout: .seconds(15)).sql ==
            "SELECT set_config('statement_timeout', $1, true), set_config('enable_nestloop', 'off', true), set_config('enable_seqscan', 'off', true), set_config('jit', 'off', true)")
        #expect(JobStore.transactionSettings(.claimInIndexOrder, timeout: .milliseconds(1)).sql ==
            "SELECT set_config('statement_timeout', $1, true), set_config('enable_seqscan', 'off', true), set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true), set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true), set_config('jit', 'off', true)")
    }
}

@Suite struct ArrayChunksTests {
    /// The heartbeat's and the provider reconciliation's batches: every element once, in
    /// order, none over the size.
    @Test func chunksKeepEveryElementInOrderAndNoneOverTheSize() {
        #expect([Int]().chunks(of: 3).isEmpty)
        #expect([1, 2, 3, 4, 5, 6, 7].chunks(of: 3) == [[1, 2, 3], [4, 5, 6], [7]])
        #expect([1, 2].chunks(of: 1_000) == [[1, 2]])
        #expect([1, 2, 3].chunks(of: 1) == [[1], [2], [3]])
    }
}
