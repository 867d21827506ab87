import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
@testable import PaymentsSimulator

/// `payments gateway`'s server on a free port of 127.0.0.1 for the length of `test`, over
/// the journal at `journal`, stopped (and its journal released) before this returns.
func withLiveGateway(journal: String, faults configure: (inout GatewayFaults) -> Void = { _ in },
                     _ test: (GatewayTestClient) async throws -> Void) async throws {
    var settings = GatewaySettings(journalPath: journal)
    settings.port = 0
    settings.faults.latencyMillis = 0
    settings.faults.jitterMillis = 0
    configure(&settings.faults)
    let server = try GatewayServer(settings, logger: Logger(label: "gateway-test"))
    let port = try await server.start()
    do {
        try await test(GatewayTestClient(port: port))
    } catch {
        await server.stop()
        throw error
    }
    await server.stop()
}

/// Plain HTTP requests to a live gateway, as any client sends them.
struct GatewayTestClient: Sendable {
    enum Method { case get, post, head, delete }

    struct Response: Sendable {
        var status: HTTPResponseStatus
        var headers: HTTPHeaders
        var body: ByteBuffer
    }

    let port: Int

    func execute(uri: String, method: Method, headers: HTTPHeaders = [:], body: ByteBuffer? = nil) async throws -> Response {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(uri)")
        request.method = switch method {
        case .get: .GET
        case .post: .POST
        case .head: .HEAD
        case .delete: .DELETE
        }
        request.headers = headers
        if let body { request.body = .bytes(body) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        return Response(status: response.status, headers: response.headers, body: try await response.body.collect(upTo: 1 << 20))
    }

    /// Whether the gateway came to hold a hung request (its /v1/stats `hangs`) within two
    /// seconds: a test that needs a request held waits for it, never a fixed time (under
    /// CI's load a request sent 200 ms or 1 s earlier had not always arrived).
    func holdsAHungRequest() async throws -> Bool {
        for _ in 0..<100 {
            let stats = try await execute(uri: "/v1/stats", method: .get)
            let json = try JSONSerialization.jsonObject(with: Data(buffer: stats.body)) as? [String: Any]
            if ((json?["hangs"] as? Int) ?? 0) >= 1 { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return false
    }
}
