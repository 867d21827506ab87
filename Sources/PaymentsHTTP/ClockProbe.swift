import AsyncHTTPClient
import Foundation
import NIOCore
import PaymentsCore

/// The clock of a serve or gateway, read from its `GET /healthz` (`time_ms`).
public enum ClockProbe {
    public static func read(_ name: String, baseURL: String, client: HTTPClient = .shared) async throws -> ClockReading {
        let url = (baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL) + "/healthz"
        return try await ClockSkew.measure(name) {
            let response = try await client.execute(HTTPClientRequest(url: url), timeout: .seconds(3))
            let body = try await response.body.collect(upTo: 64 * 1024)
            guard response.status.code == 200, let time = ClockSkew.timeField(Data(buffer: body)) else {
                throw PaymentsError.unreachable(role: name, endpoint: url, reason: "answered \(response.status.code) without time_ms")
            }
            return time
        }
    }
}
