import Foundation
import PaymentsCore
import Testing

extension Integration {
    /// `payments reconcile` against a real `payments gateway`: the charges a database lost
    /// (as after a restore to an earlier point) are found, adopted once, and proven.
    @Suite struct ProviderReconcileTests {
        static let port = 18_140 + TestEnvironment.portOffset

        static func reconcile(_ gateway: GatewayProcess, from: String, _ extra: [String] = []) async throws -> (status: Int32, json: [String: Any]) {
            let result = try await TestEnvironment.run(["reconcile", "--gateway-url", gateway.url, "--from", from, "--json"] + extra)
            let json = (try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any] ?? [:]
            if json.isEmpty { Issue.record("reconcile printed no JSON: \(result.stdout) \(result.stderr)") }
            return (result.status, json)
        }

        static func keys(_ findings: Any?) -> [String] {
            ((findings as? [[String: Any]]) ?? []).compactMap { $0["key"] as? String }.sorted()
        }

        @Test func reconcileFindsAndAdoptsChargesTheDatabaseLost() async throws {
            try await TestEnvironment.migrate()
            try await QueueReset.cancelLeftovers()
            // The window opens now, to the millisecond: every payment an earlier test
            // finished is before it (a window opened 2 s early took in theirs, whose
            // charges are not at this test's gateway, and the clean run was not clean).
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            let from = formatter.string(from: Date())
            let prefix = TestEnvironment.uniquePrefix("settle")
            let gateway = try GatewayProcess(port: Self.port)
            try await gateway.waitUntilHealthy()
            try await Integration.WorkerTests.enqueue(20, prefix: prefix)
            let serve = try ServeProcess(arguments: ["--gateway-url", gateway.url], port: Self.port + 1, journal: gateway.journal)
            try await serve.waitUntilHealthy()
            try await Integration.WorkerTests.waitUntilDrained(prefix, timeout: .seconds(60))

            let clean = try await Self.reconcile(gateway, from: from)
            #expect(clean.status == 0, "\(clean.json)")
            let cleanReport = clean.json["report"] as? [String: Any] ?? [:]
            #expect(cleanReport["charges_listed"] as? Int == 20 && cleanReport["succeeded_checked"] as? Int == 20, "\(clean.json)")

            // Charged at the provider, unknown to the database: what a restore to before
            // these payments leaves (their ids, past the restored sequence, free again).
            let lost = ["\(prefix)-lost-1", "\(prefix)-lost-2"]
            let nextID = try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT last_value FROM payment_ids")
            for (i, key) in lost.enumerated() {
                #expect(try await gateway.charge(key: key, amountMinor: 1_234, currency: "EUR", jobID: Int64(nextID + 1_000 + i)) != nil)
            }
            // A record naming a job id far past the sequence: adopted, under a new id, and the
            // sequence does not jump there.
            let far = Int64(nextID) + 50_000_000
            #expect(try await gateway.charge(key: "\(prefix)-lost-far", amountMinor: 99, currency: "EUR", jobID: far) != nil)
            let found = try await Self.reconcile(gateway, from: from)
            #expect(found.status == 1)
            #expect(Self.keys((found.json["report"] as? [String: Any])?["unknown_keys"]) == lost + ["\(prefix)-lost-far"], "\(found.json)")

            let adopted = try await Self.reconcile(gateway, from: from, ["--adopt"])
            #expect(adopted.status == 0, "\(adopted.json)")
            let adoption = adopted.json["adoption"] as? [String: Any] ?? [:]
            let ids = ((adoption["adopted"] as? [Int]) ?? []).sorted()
            #expect(ids.count == 3 && Array(ids.prefix(2)) == [nextID + 1_000, nextID + 1_001], "adopted under their old ids: \(adoption)")
            #expect(!ids.contains(Int(far)), "\(adoption)")
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT last_value FROM payment_ids") < Int(far))
            #expect((adopted.json["after"] as? [String: Any])?["clean"] as? Bool == true, "\(adopted.json)")

            // Adopted once: a second run finds nothing to adopt.
            let again = try await Self.reconcile(gateway, from: from, ["--adopt"])
            #expect(again.status == 0)
            #expect(((again.json["adoption"] as? [String: Any])?["adopted"] as? [Int])?.isEmpty == true, "\(again.json)")

            // The payer retrying its request gets the adopted payment, not a 409.
            let body = #"{"amount_minor":1234,"currency":"EUR","debtor":"acct_a","creditor":"acct_b"}"#
            let retry = try await HTTP.request("POST", "http://127.0.0.1:\(serve.port)/v1/payments",
                                               headers: ["Idempotency-Key": lost[0], "Content-Type": "application/json"], body: Data(body.utf8))
            #expect(retry.status == 200, "\(retry.status) \(retry.json ?? [:])")
            #expect(retry.json?["state"] as? String == "succeeded")

            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
            // Every charge of the provider is one succeeded payment's, posted once.
            try await Integration.WorkerTests.assertInvariants(prefix, journals: [gateway.journal])
            let states = try await Integration.WorkerTests.states(prefix)
            #expect(states == ["succeeded": 23], "\(states)")
        }

        @Test func reconcileRefusesBadInput() async throws {
            for arguments in [["reconcile"], ["reconcile", "--gateway-url", "ftp://x"],
                              ["reconcile", "--gateway-url", "http://127.0.0.1:1", "--from", "yesterday"],
                              ["reconcile", "--gateway-url", "http://127.0.0.1:1", "--page-size", "0"]] {
                let result = try await TestEnvironment.run(arguments, environment: ["GATEWAY_URL": ""])
                #expect(result.status == 64, "\(arguments): \(result.status) \(result.stderr)")
                #expect(result.stderr.contains("Error:") || result.stderr.contains("error:"), "\(arguments): \(result.stderr)")
            }
        }
    }
}
