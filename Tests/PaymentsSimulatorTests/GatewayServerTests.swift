import Foundation
import Logging
import NIOCore
import NIOHTTP1
import PaymentsCore
@testable import PaymentsHTTP
@testable import PaymentsSimulator
import Testing

/// The gateway's own HTTP/1.1 server: calls pipelined on one connection are processed
/// together and answered in order; HTTP's edges answered as HTTP says.
@Suite struct GatewayServerTests {
    /// 40 calls of 500 ms pipelined on one connection end together: processed one after the
    /// other they would take 20 seconds. The bound is a quarter of that, so a loaded machine
    /// (CI runs suites in parallel) cannot fail it and a serial server cannot pass it: 50 ms
    /// calls under a one-second bound failed once in CI at 1.12 s. Each answer is still its
    /// own call's.
    @Test func pipelinedCallsAreProcessedTogether() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal(), faults: { $0.latencyMillis = 500; $0.jitterMillis = 0 }) { client in
            let gateway = HTTPGateway(baseURL: "http://127.0.0.1:\(client.port)", timeout: .seconds(10), connections: 1, logger: Logger(label: "client"))
            let started = ContinuousClock.now
            let wrong = await withTaskGroup(of: Bool.self) { group in
                for i in 1...40 {
                    group.addTask {
                        let payment = Payment(amountMinor: Int64(i), currency: "EUR", debtor: "acct_1", creditor: "acct_2")
                        let outcome = await gateway.charge(ChargeRequest(idempotencyKey: "together-\(i)", payment: payment, jobID: Int64(i),
                                                                         attempt: 1, deadline: Date() + 10))
                        guard case let .accepted(record) = outcome else { return true }
                        return !record.isCharge(of: "together-\(i)", for: payment)
                    }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
            let elapsed = ContinuousClock.now - started
            #expect(wrong == 0)
            #expect(await gateway.charges!.openConnections == 1)
            #expect(elapsed < .seconds(5), "40 pipelined calls of 500 ms took \(elapsed); one after the other they take 20 s")
            try await gateway.shutdown()
        }
    }

    /// Answers come back in the order their requests were sent even when a later one is
    /// ready first: a charge waits for the journal's fsync, the lookup pipelined behind it
    /// is answered at once.
    @Test func answersKeepTheirRequestsOrder() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal()) { client in
            let charge = Self.request(key: "order-1", deadline: Date() + 10)
            let lookup = "GET /v1/charges?idempotency_key=order-2 HTTP/1.1\r\nHost: x\r\n\r\n"
            let text = try await Self.exchange(port: client.port, charge + lookup, answers: 2)
            // An answer's status line follows the previous answer's body directly.
            let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { "HTTP/1.1 " + ($0.components(separatedBy: "\r\n").first ?? "") }
            #expect(statuses == ["HTTP/1.1 201 Created", "HTTP/1.1 404 Not Found"])
        }
    }

    /// A malformed request pipelined behind a charge is answered 400 after the charge's own
    /// answer, never in its place (a client would read "refused, not charged").
    @Test func aMalformedRequestIsAnsweredAfterTheAnswersBeforeIt() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal()) { client in
            let charge = Self.request(key: "before-garbage", deadline: Date() + 10)
            let text = try await Self.exchange(port: client.port, charge + "NOT HTTP AT ALL\r\n\r\n", answers: 2)
            let statuses = text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { "HTTP/1.1 " + ($0.components(separatedBy: "\r\n").first ?? "") }
            #expect(statuses == ["HTTP/1.1 201 Created", "HTTP/1.1 400 Bad Request"])
        }
    }

    /// A query that is not valid percent-encoding is a 400, not an absent parameter (which
    /// would turn a lookup into the settlement listing).
    @Test func anUndecodableQueryIsRefused() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal()) { client in
            // Sent as written (an HTTP client library would escape the stray '%').
            for query in ["idempotency_key=50%zz", "idempotency_key=%", "since=%FF"] {
                let text = try await Self.exchange(port: client.port, "GET /v1/charges?\(query) HTTP/1.1\r\nHost: x\r\n\r\n", answers: 1)
                #expect(text.hasPrefix("HTTP/1.1 400 Bad Request") && text.contains("invalid_query"), "\(query): \(text.prefix(200))")
            }
            // '+' is a character of the key, as the earlier server read it.
            _ = try await GatewayRouteTests().post(client, key: "a+b")
            #expect(try await client.execute(uri: "/v1/charges?idempotency_key=a+b", method: .get).status == .ok)
            #expect(try await client.execute(uri: "/v1/charges?idempotency_key=a%2Bb", method: .get).status == .ok)
        }
    }

    /// Past `maxOutstanding` unanswered requests a connection is read no further until its
    /// answers catch up, then read again: 1,500 charges of 50 ms pipelined in one write all
    /// come back, in order.
    @Test func aDeepPipelineIsReadAgainOnceAnswered() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal(), faults: { $0.latencyMillis = 50; $0.jitterMillis = 0 }) { client in
            let count = GatewayConnectionHandler.maxOutstanding + 476
            let requests = (1...count).map { Self.request(key: "deep-\($0)", deadline: Date() + 30) }.joined()
            let text = try await Self.exchange(port: client.port, requests, answers: count)
            #expect(Self.complete(text) == count)
            #expect(text.components(separatedBy: "HTTP/1.1 201 Created").count - 1 == count)
            let keys = text.components(separatedBy: #""key":""#).dropFirst().map { $0.prefix { $0 != "\"" } }
            #expect(keys == (1...count).map { "deep-\($0)"[...] })
        }
    }

    @Test func httpEdges() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal()) { client in
            let head = try await client.execute(uri: "/healthz", method: .head)
            #expect(head.status == .ok && head.body.readableBytes == 0)
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok && String(buffer: health.body).contains(#""time_ms":"#))
            let missing = try await client.execute(uri: "/v2/nothing", method: .get)
            #expect(missing.status == .notFound && String(buffer: missing.body).contains(#""code":"not_found""#))
            let wrongMethod = try await client.execute(uri: "/v1/charges", method: .delete)
            #expect(wrongMethod.status == .methodNotAllowed && String(buffer: wrongMethod.body).contains("method_not_allowed"))
            var headers = HTTPHeaders()
            headers.add(name: "Idempotency-Key", value: "big")
            let big = try await client.execute(uri: "/v1/charges", method: .post, headers: headers,
                                               body: ByteBuffer(repeating: UInt8(ascii: " "), count: GatewayConnectionHandler.maxBody + 1))
            #expect(big.status == .payloadTooLarge)
            let lookup = try await client.execute(uri: "/v1/charges?idempotency_key=big", method: .get)
            #expect(lookup.status == .notFound)
            let stats = try await client.execute(uri: "/v1/stats", method: .get)
            #expect(stats.status == .ok && String(buffer: stats.body).contains(#""requests":0"#))
        }
    }

    /// `Connection: close` is honoured: the answer, then the end of the connection.
    @Test func connectionCloseEndsTheConnection() async throws {
        try await withLiveGateway(journal: GatewayRouteTests.journal()) { client in
            let request = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            let text = try await Self.exchange(port: client.port, request, answers: 1, untilClosed: true)
            #expect(text.hasPrefix("HTTP/1.1 200 OK") && text.lowercased().contains("connection: close"))
        }
    }

    static func request(key: String, deadline: Date) -> String {
        let body = GatewayRouteTests.charge
        return "POST /v1/charges HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nIdempotency-Key: \(key)\r\n"
            + "Request-Deadline: \(Int64(deadline.timeIntervalSince1970 * 1000))\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    /// Writes `text` on a new connection and reads until `answers` complete answers came
    /// (each with a Content-Length body), or the peer closed.
    static func exchange(port: Int, _ text: String, answers: Int, untilClosed: Bool = false) async throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw PaymentsError.invalidOption("cannot connect to 127.0.0.1:\(port)") }
        _ = Array(text.utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            received += buffer[..<n]
            if !untilClosed, Self.complete(String(decoding: received, as: UTF8.self)) >= answers { break }
        }
        return String(decoding: received, as: UTF8.self)
    }

    /// How many whole answers `text` holds.
    static func complete(_ text: String) -> Int {
        var count = 0
        var rest = text[...]
        while let end = rest.range(of: "\r\n\r\n") {
            let head = rest[..<end.lowerBound].lowercased()
            let length = head.components(separatedBy: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let bodyStart = end.upperBound
            guard rest.utf8.distance(from: bodyStart, to: rest.endIndex) >= length else { break }
            rest = rest[rest.utf8.index(bodyStart, offsetBy: length)...]
            count += 1
        }
        return count
    }
}
