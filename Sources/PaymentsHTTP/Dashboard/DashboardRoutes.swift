import Hummingbird
import NIOCore
import ServiceLifecycle

/// The dashboard: the page at `/`, its data as one JSON document and as a stream.
struct DashboardRoutes: Sendable {
    let collector: DashboardCollector

    func register<Context: RequestContext>(on router: Router<Context>) {
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-cache"],
                     body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/v1/dashboard") { _, _ in try JSONResponse.make(collector.snapshot()) }
        router.get("/v1/dashboard/events") { _, _ in
            let stream = collector.subscribe()
            // Ends when the server starts shutting down: an open stream would otherwise
            // hold the HTTP server's graceful drain for ever.
            return Response(status: .ok,
                            headers: [.contentType: "text/event-stream", .cacheControl: "no-cache", .init("X-Accel-Buffering")!: "no"],
                            body: .init(asyncSequence: stream.cancelOnGracefulShutdown()))
        }
    }
}

/// `dashboard.html`, compiled into the binary by the EmbedFiles plugin.
enum DashboardPage {
    static var html: String { EmbeddedHTTPFiles.named("dashboard.html") }
}
