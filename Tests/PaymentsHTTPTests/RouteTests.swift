import Foundation
import Hummingbird
import HummingbirdTesting
import PaymentsCore
import PaymentsHTTP
import PostgresNIO
import Prometheus
import Testing

/// The HTTP contract in process, with a fake service: every route's status codes,
/// headers and the JSON error shape. The same routes against the real topology are
/// Tests/IntegrationTests/APITests.swift.
@Suite struct RouteTests {
    static let body = #"{"amount_minor": 1234, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#

    func withApp(_ api: FakePaymentsAPI = FakePaymentsAPI(), _ test: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
        let app = Application(router: buildRouter(api: api, registry: PrometheusCollectorRegistry()))
        try await app.test(.router, test)
    }

    func json(_ buffer: ByteBuffer) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(buffer: buffer))) as? [String: Any] ?? [:]
    }

    /// An error response: the status, JSON content type, and `{"error":{"code","message"}}`.
    func expectError(_ response: TestResponse, _ status: HTTPResponse.Status, _ code: String,
                     sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(response.status == status, sourceLocation: sourceLocation)
        #expect(response.headers[.contentType] == "application/json", sourceLocation: sourceLocation)
        let error = json(response.body)["error"] as? [String: Any]
        #expect(error?["code"] as? String == code, "\(String(buffer: response.body))", sourceLocation: sourceLocation)
        #expect((error?["message"] as? String)?.isEmpty == false, sourceLocation: sourceLocation)
    }

    func post(_ client: some TestClientProtocol, key: String?, body: String = body, contentType: String = "application/json") async throws -> TestResponse {
        var headers: HTTPFields = [.contentType: contentType]
        if let key { headers[.idempotencyKey] = key }
        return try await client.execute(uri: "/v1/payments", method: .post, headers: headers, body: ByteBuffer(string: body))
    }

    // MARK: POST /v1/payments

    @Test func createThenReplayThenConflict() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            let created = try await post(client, key: "k-1")
            #expect(created.status == .created)
            #expect(created.headers[.location] == "/v1/payments/1")
            #expect(created.headers[.freshnessToken] == "0/16B3748")
            #expect(created.headers[.contentType] == "application/json")
            let job = json(created.body)
            #expect(job["amount_minor"] as? Int == 1234)
            #expect(job["state"] as? String == "queued")
            #expect(job["priority"] as? Int == 100)

            let again = try await post(client, key: "k-1")
            #expect(again.status == .ok)
            #expect(json(again.body)["id"] as? Int == 1)

            let reused = try await post(client, key: "k-1", body: #"{"amount_minor": 99, "currency": "EUR", "debtor": "acct_1", "creditor": "acct_2"}"#)
            expectError(reused, .conflict, "idempotency_key_reused")
        }
    }

    @Test(arguments: [
        (#"{"currency": "EUR", "debtor": "a", "creditor": "b"}"#, "missing_field"),
        (#"{"amount_minor": 0, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "invalid_amount"),
        (#"{"amount_minor": 12, "currency": "XXX", "debtor": "a", "creditor": "b"}"#, "invalid_currency"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a b", "creditor": "b"}"#, "invalid_account"),
        (#"{"amount_minor": 12, "currency": "EUR", "debtor": "a", "creditor": "b", "x": 1}"#, "unknown_field"),
        (#"[1, 2]"#, "invalid_body"),
        (#"{"amount_minor": 12,"#, "invalid_json"),
        (#"{"amount_minor": 100, "amount_minor": 200, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "duplicate_field"),
        (#"{"amount_minor": 100, "amount\u005fminor": 200, "currency": "EUR", "debtor": "a", "creditor": "b"}"#, "duplicate_field"),
        ("", "invalid_json"),
    ])
    func badBodiesAre400WithTheirCodeAndChangeNothing(_ body: String, _ code: String) async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            expectError(try await post(client, key: "k-bad", body: body), .badRequest, code)
        }
        #expect(api.creates == 0)
    }

    @Test func headersAndMediaTypeAreChecked() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            expectError(try await post(client, key: nil), .badRequest, "missing_idempotency_key")
            expectError(try await post(client, key: "has space"), .badRequest, "invalid_idempotency_key")
            expectError(try await post(client, key: String(repeating: "k", count: 256)), .badRequest, "invalid_idempotency_key")
            expectError(try await post(client, key: "k-2", contentType: "text/plain"), .unsupportedMediaType, "unsupported_media_type")
            let huge = #"{"amount_minor": 1, "currency": "EUR", "debtor": "a", "creditor": "b", "pad": ""# + String(repeating: "x", count: 20_000) + "\"}"
            expectError(try await post(client, key: "k-3", body: huge), .contentTooLarge, "body_too_large")
        }
        #expect(api.creates == 0)
    }

    /// A database that went away is 503 with Retry-After, never a bare 500.
    @Test func databaseOutagesAre503() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            api.failNextCalls(with: TimeoutError())
            let create = try await post(client, key: "k-4")
            expectError(create, .serviceUnavailable, "database_unavailable")
            #expect(create.headers[.retryAfter] == "1")
            api.failNextCalls(with: PaymentsError.unreachable(role: "pgbouncer-read", endpoint: "127.0.0.1:6433", reason: "refused"))
            expectError(try await client.execute(uri: "/v1/payments/1", method: .get), .serviceUnavailable, "database_unavailable")
            expectError(try await client.execute(uri: "/v1/stats", method: .get), .serviceUnavailable, "database_unavailable")
            api.failNextCalls(with: PaymentsError.database("something unexpected"))
            expectError(try await client.execute(uri: "/v1/stats", method: .get), .internalServerError, "internal_error")
        }
    }

    // MARK: GET /v1/payments/{id}

    @Test func readsSayWhereTheyWereServed() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            _ = try await post(client, key: "k-5")
            let read = try await client.execute(uri: "/v1/payments/1", method: .get)
            #expect(read.status == .ok)
            #expect(read.headers[.servedBy] == "payments-replica-1")
            #expect(read.headers[.readSource] == "replica")
            #expect(read.headers[.replicaLag] == "0.250")
            #expect(read.headers[.readFallback] == nil)
            #expect((json(read.body)["postings"] as? [Any])?.isEmpty == true)

            api.setReadSource(ReadSource(kind: .primary, node: "payments-primary", lagSeconds: 0, viaWritePath: true,
                                         reason: "read path unavailable: refused"))
            let fallback = try await client.execute(uri: "/v1/payments/1", method: .get,
                                                    headers: [.freshnessToken: "0/16B3748"])
            #expect(fallback.status == .ok)
            #expect(fallback.headers[.readSource] == "primary")
            #expect(fallback.headers[.readFallback] == "read path unavailable: refused")

            let missing = try await client.execute(uri: "/v1/payments/999", method: .get)
            expectError(missing, .notFound, "payment_not_found")
            #expect(missing.headers[.servedBy] == "payments-primary")
        }
    }

    /// Issue 25: pollers pay nothing for an unchanged payment (an ETag, 304 for
    /// If-None-Match), an open payment is revalidated, and HEAD answers every GET route.
    @Test func conditionalReadsAndHead() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            _ = try await post(client, key: "k-etag")
            let read = try await client.execute(uri: "/v1/payments/1", method: .get)
            let tag = try #require(read.headers[.eTag])
            #expect(tag.hasPrefix("\"1-") && tag.hasSuffix("\""), "\(tag)")
            #expect(read.headers[.cacheControl] == "no-cache", "a queued payment changes: revalidate")
            let same = try await client.execute(uri: "/v1/payments/1", method: .get, headers: [.ifNoneMatch: tag])
            #expect(same.status == .notModified && same.body.readableBytes == 0)
            #expect(same.headers[.eTag] == tag && same.headers[.servedBy] == "payments-replica-1")
            let listed = try await client.execute(uri: "/v1/payments/1", method: .get, headers: [.ifNoneMatch: "\"other\", W/\(tag)"])
            #expect(listed.status == .notModified)
            let other = try await client.execute(uri: "/v1/payments/1", method: .get, headers: [.ifNoneMatch: "\"1-0\""])
            #expect(other.status == .ok && other.body.readableBytes > 0)
            // (GET / is the dashboard, not routed without a collector: checked on a real serve.)
            for uri in ["/healthz", "/readyz", "/v1/payments/1", "/v1/stats", "/openapi.yaml", "/metrics"] {
                let head = try await client.execute(uri: uri, method: .head)
                #expect(head.status == .ok && head.body.readableBytes == 0, "HEAD \(uri): \(head.status)")
            }
        }
    }

    @Test(arguments: ["0", "-1", "abc", "1.5", "99999999999999999999"])
    func badIDsAre400(_ id: String) async throws {
        try await withApp { client in
            expectError(try await client.execute(uri: "/v1/payments/\(id)", method: .get), .badRequest, "invalid_id")
        }
    }

    @Test(arguments: ["", "16B3748", "0/", "/1", "0/123456789", "G/1", "0/1/2"])
    func badFreshnessTokensAre400(_ token: String) async throws {
        try await withApp { client in
            let response = try await client.execute(uri: "/v1/payments/1", method: .get,
                                                    headers: [.freshnessToken: token])
            expectError(response, .badRequest, "invalid_freshness_token")
        }
    }

    // MARK: operations

    @Test func operationsRoutes() async throws {
        let api = FakePaymentsAPI()
        try await withApp(api) { client in
            let stats = try await client.execute(uri: "/v1/stats", method: .get)
            #expect(stats.status == .ok)
            let body = json(stats.body)
            #expect(Set(body.keys) == ["queue", "worker", "reads_served_by"])
            #expect((body["queue"] as? [String: Any])?["counts_served_by"] as? String == "payments-replica-2")
            #expect((body["worker"] as? [String: Any])?["latency_seconds_p99"] as? Double == 0.3)

            #expect(try await client.execute(uri: "/healthz", method: .get).status == .ok)
            #expect(json(try await client.execute(uri: "/readyz", method: .get).body)["status"] as? String == "ready")
            api.setProblems(["pgbouncer-read: connection refused"])
            let notReady = try await client.execute(uri: "/readyz", method: .get)
            expectError(notReady, .serviceUnavailable, "not_ready")
            #expect(String(buffer: notReady.body).contains("pgbouncer-read"))

            let metrics = try await client.execute(uri: "/metrics", method: .get)
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)

            let document = try await client.execute(uri: "/openapi.yaml", method: .get)
            #expect(document.status == .ok)
            #expect(document.headers[.contentType] == "application/yaml")
            #expect(String(buffer: document.body).hasPrefix("openapi:"))
            #expect(String(buffer: document.body).contains("/v1/payments/{id}"))
        }
    }

    @Test func unknownRoutesAndMethodsGetTheJSONErrorShape() async throws {
        try await withApp { client in
            expectError(try await client.execute(uri: "/nope", method: .get), .notFound, "not_found")
            expectError(try await client.execute(uri: "/v1/payments", method: .get), .notFound, "not_found")
            expectError(try await client.execute(uri: "/v1/payments/1", method: .delete), .notFound, "not_found")
        }
    }
}
