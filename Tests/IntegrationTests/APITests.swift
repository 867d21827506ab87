import Foundation
import PaymentsCore
import Testing

extension Integration {
    /// The HTTP API of a real `serve` (no workers: jobs stay queued, reads are the point).
    @Suite struct APITests {
        static let port = 18_090 + TestEnvironment.portOffset
        static var base: String { "http://127.0.0.1:\(port)" }

        static func startServer(_ extra: [String] = []) async throws -> ServeProcess {
            try await TestEnvironment.migrate()
            let serve = try ServeProcess(arguments: ["--no-workers"] + extra, port: port, journal: ServeProcess.journalPath())
            try await serve.waitUntilHealthy()
            return serve
        }

        static func stop(_ serve: ServeProcess) async throws {
            serve.signal(SIGTERM)
            #expect(try await serve.waitForExit(timeout: .seconds(30)) == 0)
        }

        static func body(_ amount: Int = 1234, currency: String = "EUR", extra: String = "") -> Data {
            Data(#"{"amount_minor": \#(amount), "currency": "\#(currency)", "debtor": "acct_1", "creditor": "acct_2"\#(extra)}"#.utf8)
        }

        static func post(_ key: String?, _ body: Data, contentType: String = "application/json") async throws -> HTTP.Reply {
            var headers = ["Content-Type": contentType]
            if let key { headers["Idempotency-Key"] = key }
            return try await HTTP.request("POST", "\(base)/v1/payments", headers: headers, body: body)
        }

        @Test func idempotencySemantics() async throws {
            let serve = try await Self.startServer()
            let key = TestEnvironment.uniquePrefix("api-idem")
            let first = try await Self.post(key, Self.body())
            #expect(first.status == 201)
            let job = try #require(first.json)
            #expect(job["state"] as? String == "queued")
            #expect(job["amount_minor"] as? Int == 1234)
            #expect(first.header("X-Freshness-Token")?.contains("/") == true)
            #expect(first.header("Location") == "/v1/payments/\(job["id"] as? Int ?? -1)")

            let again = try await Self.post(key, Self.body())
            #expect(again.status == 200)
            #expect(again.json?["id"] as? Int == job["id"] as? Int)

            let different = try await Self.post(key, Self.body(999))
            #expect(different.status == 409)
            let error = different.json?["error"] as? [String: Any]
            #expect(error?["code"] as? String == "idempotency_key_reused")
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(key)") == 1)

            // Concurrent retries of one request create one payment.
            let raceKey = TestEnvironment.uniquePrefix("api-race")
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<8 { group.addTask { try await Self.post(raceKey, Self.body(77)).status } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 201 }.count == 1, "\(statuses)")
            #expect(statuses.filter { $0 == 200 }.count == 7, "\(statuses)")
            try await Self.stop(serve)
            try await QueueReset.cancelLeftovers()
        }

        @Test func readYourWritesAThousandTimes() async throws {
            let serve = try await Self.startServer()
            let prefix = TestEnvironment.uniquePrefix("api-ryw")
            var sources: [String: Int] = [:]
            // Eight clients side by side, 125 write-then-read pairs each: each read must see
            // its own write however the reads spread.
            try await withThrowingTaskGroup(of: [String].self) { group in
                for client in 0..<8 {
                    group.addTask {
                        var served: [String] = []
                        for n in 0..<125 {
                            let i = client * 125 + n
                            let created = try await Self.post("\(prefix)-\(i)", Self.body(i + 1))
                            try #require(created.status == 201)
                            let id = try #require(created.json?["id"] as? Int)
                            let token = try #require(created.header("X-Freshness-Token"))
                            let read = try await HTTP.request("GET", "\(Self.base)/v1/payments/\(id)", headers: ["X-Freshness-Token": token])
                            #expect(read.status == 200, "read \(i) of job \(id) got \(read.status)")
                            #expect(read.json?["id"] as? Int == id)
                            served.append(read.header("X-Served-By") ?? "?")
                        }
                        return served
                    }
                }
                for try await served in group { for node in served { sources[node, default: 0] += 1 } }
            }
            print("read-your-writes served by: \(sources)")
            #expect(sources.values.reduce(0, +) == 1_000)
            try await Self.stop(serve)
            try await QueueReset.cancelLeftovers()
        }

        @Test func statusReadsAreAnsweredByBothReplicas() async throws {
            let serve = try await Self.startServer()
            let created = try await Self.post(TestEnvironment.uniquePrefix("api-spread"), Self.body())
            let id = try #require(created.json?["id"] as? Int)
            try await Task.sleep(for: .milliseconds(200))
            var servedBy: [String: Int] = [:]
            // Eight clients side by side, so the read pool holds several server connections.
            try await withThrowingTaskGroup(of: [String].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var nodes: [String] = []
                        for _ in 0..<25 {
                            nodes.append(try await HTTP.request("GET", "\(Self.base)/v1/payments/\(id)").header("X-Served-By") ?? "?")
                        }
                        return nodes
                    }
                }
                for try await nodes in group { for node in nodes { servedBy[node, default: 0] += 1 } }
            }
            print("served by: \(servedBy)")
            #expect(servedBy["payments-replica-1", default: 0] > 0, "\(servedBy)")
            #expect(servedBy["payments-replica-2", default: 0] > 0, "\(servedBy)")
            let stats = try await HTTP.request("GET", "\(Self.base)/v1/stats").json
            let reads = stats?["reads_served_by"] as? [String: Int] ?? [:]
            #expect(reads["payments-replica-1", default: 0] > 0 && reads["payments-replica-2", default: 0] > 0, "\(reads)")
            try await Self.stop(serve)
            try await QueueReset.cancelLeftovers()
        }

        @Test func everyBadInputGetsA4xxWithACode() async throws {
            let serve = try await Self.startServer()
            let key = TestEnvironment.uniquePrefix("api-bad")
            let cases: [(String, () async throws -> HTTP.Reply, Int, String)] = [
                ("bad JSON", { try await Self.post(key, Data("{not json".utf8)) }, 400, "invalid_json"),
                ("not an object", { try await Self.post(key, Data("[1,2]".utf8)) }, 400, "invalid_body"),
                ("missing field", { try await Self.post(key, Data(#"{"amount_minor": 5, "currency": "EUR", "debtor": "a"}"#.utf8)) }, 400, "missing_field"),
                ("zero amount", { try await Self.post(key, Self.body(0)) }, 400, "invalid_amount"),
                ("negative amount", { try await Self.post(key, Self.body(-10)) }, 400, "invalid_amount"),
                ("fractional amount", { try await Self.post(key, Data(#"{"amount_minor": 1.5, "currency": "EUR", "debtor": "a", "creditor": "b"}"#.utf8)) }, 400, "invalid_field"),
                ("string amount", { try await Self.post(key, Data(#"{"amount_minor": "5", "currency": "EUR", "debtor": "a", "creditor": "b"}"#.utf8)) }, 400, "invalid_field"),
                ("unknown currency", { try await Self.post(key, Self.body(currency: "XYZ")) }, 400, "invalid_currency"),
                ("lower-case currency", { try await Self.post(key, Self.body(currency: "eur")) }, 400, "invalid_currency"),
                ("bad account", { try await Self.post(key, Data(#"{"amount_minor": 5, "currency": "EUR", "debtor": "a b", "creditor": "b"}"#.utf8)) }, 400, "invalid_account"),
                ("same accounts", { try await Self.post(key, Data(#"{"amount_minor": 5, "currency": "EUR", "debtor": "a", "creditor": "a"}"#.utf8)) }, 400, "invalid_account"),
                ("priority out of range", { try await Self.post(key, Self.body(extra: #", "priority": 99999"#)) }, 400, "invalid_field"),
                ("unknown field", { try await Self.post(key, Self.body(extra: #", "memo": "x""#)) }, 400, "unknown_field"),
                ("no idempotency key", { try await Self.post(nil, Self.body()) }, 400, "missing_idempotency_key"),
                ("bad idempotency key", { try await Self.post("has space", Self.body()) }, 400, "invalid_idempotency_key"),
                ("wrong content type", { try await Self.post(key, Self.body(), contentType: "text/plain") }, 415, "unsupported_media_type"),
                ("oversized body", { try await Self.post(key, Data(repeating: UInt8(ascii: " "), count: 64 * 1024)) }, 413, "body_too_large"),
                ("non-numeric id", { try await HTTP.request("GET", "\(Self.base)/v1/payments/abc") }, 400, "invalid_id"),
                ("negative id", { try await HTTP.request("GET", "\(Self.base)/v1/payments/-4") }, 400, "invalid_id"),
                ("id overflow", { try await HTTP.request("GET", "\(Self.base)/v1/payments/99999999999999999999999") }, 400, "invalid_id"),
                ("unknown id", { try await HTTP.request("GET", "\(Self.base)/v1/payments/9223372036854775807") }, 404, "payment_not_found"),
                ("bad freshness token", { try await HTTP.request("GET", "\(Self.base)/v1/payments/1", headers: ["X-Freshness-Token": "yesterday"]) }, 400, "invalid_freshness_token"),
                ("unknown route", { try await HTTP.request("GET", "\(Self.base)/v2/everything") }, 404, "not_found"),
                ("wrong method", { try await HTTP.request("DELETE", "\(Self.base)/v1/payments/1") }, 404, "not_found"),
            ]
            for (name, call, status, code) in cases {
                let reply = try await call()
                #expect(reply.status == status, "\(name): status \(reply.status) body \(String(decoding: reply.body, as: UTF8.self))")
                let error = reply.json?["error"] as? [String: Any]
                #expect(error?["code"] as? String == code, "\(name): \(String(decoding: reply.body, as: UTF8.self))")
                #expect((error?["message"] as? String)?.isEmpty == false, "\(name): no message")
            }
            // None of the bad requests inserted anything.
            #expect(try await TestEnvironment.scalar(TestEnvironment.writeURL, "SELECT count(*) FROM payment_jobs WHERE idempotency_key = \(key)") == 0)
            #expect(try await HTTP.request("GET", "\(Self.base)/healthz").status == 200)
            try await Self.stop(serve)
        }

        @Test func readsFallBackToThePrimaryWhenBothReplicasAreDown() async throws {
            let serve = try await Self.startServer()
            let created = try await Self.post(TestEnvironment.uniquePrefix("api-down"), Self.body())
            let id = try #require(created.json?["id"] as? Int)
            try await Topology.run("stop", "replica-1")
            try await Topology.run("stop", "replica-2")
            var sources: [String] = []
            var failure: (any Error)?
            do {
                for _ in 0..<20 {
                    let read = try await HTTP.request("GET", "\(Self.base)/v1/payments/\(id)")
                    #expect(read.status == 200, "\(String(decoding: read.body, as: UTF8.self))")
                    #expect(read.header("X-Read-Source") == "primary")
                    sources.append(read.header("X-Served-By") ?? "?")
                }
            } catch { failure = error }
            #expect(sources.allSatisfy { $0 == "payments-primary" }, "\(sources)")
            // Restarted even when an expectation above failed: the next tests need them.
            try await Topology.run("start", "replica-1")
            try await Topology.run("start", "replica-2")
            if let failure { throw failure }
            try await Topology.waitForBothReplicasInRotation()
            let back = try await HTTP.request("GET", "\(Self.base)/v1/payments/\(id)")
            #expect(back.status == 200)
            try await Self.stop(serve)
            try await QueueReset.cancelLeftovers()
        }
    }
}

/// Drives scripts/topology for the instance the tests run against.
enum Topology {
    static func run(_ arguments: String...) async throws {
        let status = try await Subprocess.run("/bin/bash",
            [TestEnvironment.repoRoot.appendingPathComponent("scripts/topology").path, "--port-offset", "\(TestEnvironment.portOffset)"] + arguments,
            environment: TestEnvironment.environment)
        guard status == 0 else {
            throw PaymentsError.invalidOption("scripts/topology \(arguments.joined(separator: " ")) exited \(status)")
        }
    }

    /// Until direct connections through HAProxy reach both replicas again.
    static func waitForBothReplicasInRotation() async throws {
        let haproxy = TestEnvironment.url(port: 5440)
        try await TestEnvironment.eventually("both replicas back behind HAProxy", timeout: .seconds(30)) {
            var seen = Set<Int>()
            for _ in 0..<6 {
                seen.insert(try await TestEnvironment.scalar(haproxy, "SELECT inet_server_port()"))
            }
            return seen.count == 2 && !seen.contains(5432 + TestEnvironment.portOffset)
        }
    }
}
