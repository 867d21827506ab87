import Foundation
import Hummingbird
import PaymentsCore
import Prometheus

/// What operators and tools ask: stats, liveness, readiness, metrics, the API document.
struct OperationsRoutes<API: PaymentsAPI>: Sendable {
    let api: API
    let registry: PrometheusCollectorRegistry

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/v1/stats") { _, _ in try JSONResponse.make(try await api.stats()) }
        // With this process's clock: `payments status` and the dashboard compare clocks.
        router.get("/healthz") { _, _ in try JSONResponse.make(Health()) }
        router.get("/readyz") { _, _ in
            let problems = await api.readinessProblems()
            guard problems.isEmpty else {
                throw APIError(status: .serviceUnavailable, code: "not_ready", message: problems.joined(separator: "; "))
            }
            return try JSONResponse.make(["status": "ready"])
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
        }
        router.get("/openapi.yaml") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/yaml"],
                     body: .init(byteBuffer: ByteBuffer(string: OpenAPIDocument.yaml)))
        }
    }
}

/// `openapi.yaml`, compiled into the binary by the EmbedFiles plugin.
public enum OpenAPIDocument {
    public static var yaml: String { EmbeddedHTTPFiles.named("openapi.yaml") }
}

extension EmbeddedHTTPFiles {
    static func named(_ name: String) -> String { files.first { $0.name == name }?.contents ?? "" }
}

/// `GET /healthz` of serve and the gateway: alive, and this process's clock (Unix ms),
/// which `payments status` and the dashboard compare with the others'.
package struct Health: Encodable {
    var status = "ok"
    var timeMs = Int64((Date().timeIntervalSince1970 * 1000).rounded())
    package init() {}
    enum CodingKeys: String, CodingKey { case status, timeMs = "time_ms" }
}
