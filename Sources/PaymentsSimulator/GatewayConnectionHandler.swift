import NIOCore
import NIOHTTP1

/// One connection of the simulated provider: every request is handed to the routes as soon
/// as it is read, so the calls a client pipelines on a connection are processed together
/// (they share the journal's next fsync) instead of one after another; their answers are
/// written in the order the requests came, as HTTP/1.1 requires, with one flush per batch.
///
/// No task per request: an answer comes back through a callback, from a timer of this
/// connection's event loop (a simulated latency) or from the journal's thread (a charge's
/// fsync), and is carried onto the event loop before anything touches the connection.
final class GatewayConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// A request body larger than this is refused (413) and the connection closed.
    static let maxBody = 64 * 1024

    private let routes: GatewayRoutes
    private var context: ChannelHandlerContext?
    private var head: HTTPRequestHead?
    private var body: ByteBuffer?
    private var bodyTooLarge = false

    /// Requests read, answers written: the next answer to write is `written`'s.
    private var received = 0
    private var written = 0
    /// Answers that came before an earlier request's.
    private var waiting: [Int: (answer: GatewayAnswer, keepAlive: Bool)] = [:]
    /// After a request that ends the connection, later ones are not read.
    private var closing = false
    private var reading = false
    private var flushScheduled = false
    private var needsFlush = false
    private var pausedReading = false
    /// Unanswered requests a connection may have before it is read no further.
    static let maxOutstanding = 1_024

    init(routes: GatewayRoutes) {
        self.routes = routes
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelInactive(context: ChannelHandlerContext) {
        // Requests still being processed go on (a provider does not stop a charge because
        // its caller hung up); their answers have nowhere to go.
        self.context = nil
        waiting.removeAll()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        reading = true
        switch unwrapInboundIn(data) {
        case let .head(head):
            self.head = head
            body = nil
            bodyTooLarge = false
        case var .body(chunk):
            guard !bodyTooLarge else { return }
            if (body?.readableBytes ?? 0) + chunk.readableBytes > Self.maxBody {
                bodyTooLarge = true
                body = nil
            } else if body == nil {
                body = chunk
            } else {
                body!.writeBuffer(&chunk)
            }
        case .end:
            guard let head, !closing else { return }
            self.head = nil
            let index = received
            received += 1
            if received - written >= Self.maxOutstanding { setReading(false, context) }
            let keepAlive = head.isKeepAlive && !bodyTooLarge
            if !keepAlive { closing = true }
            if bodyTooLarge {
                let refusal = GatewayError(.payloadTooLarge, "payload_too_large", "the body is larger than \(Self.maxBody) bytes")
                return deliver(index, refusal.answer, keepAlive: false)
            }
            let request = GatewayRequest(head: head, body: body ?? ByteBuffer())
            body = nil
            let loop = context.eventLoop
            let handler = NIOLoopBound(self, eventLoop: loop)
            let headOnly = head.method == .HEAD
            routes.respond(to: request, on: loop) { routed in
                var shaped = routed
                shaped.headOnly = headOnly
                let answer = shaped
                if loop.inEventLoop {
                    handler.value.deliver(index, answer, keepAlive: keepAlive)
                } else {
                    loop.execute { handler.value.deliver(index, answer, keepAlive: keepAlive) }
                }
            }
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        reading = false
        if needsFlush {
            needsFlush = false
            context.flush()
        }
        context.fireChannelReadComplete()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard error is HTTPParserError else { return context.close(promise: nil) }
        // A request that cannot be parsed ends the connection, but its 400 takes its turn
        // behind the answers of the requests before it: written at once, a client would
        // pair it with an earlier charge and read "refused" where the charge is being made.
        // The decoder reports its error again on every later read: answered once.
        guard !closing else { return }
        closing = true
        let index = received
        received += 1
        deliver(index, GatewayError.badRequest("malformed_request", "the request is not valid HTTP/1.1").answer, keepAlive: false)
    }

    /// The answer of request `index`: written now if every earlier answer is, else kept
    /// until they are.
    private func deliver(_ index: Int, _ answer: GatewayAnswer, keepAlive: Bool) {
        guard let context else { return }
        guard index == written else {
            waiting[index] = (answer, keepAlive)
            return
        }
        var next: (answer: GatewayAnswer, keepAlive: Bool)? = (answer, keepAlive)
        while let (answer, keepAlive) = next {
            write(answer, keepAlive: keepAlive, context: context)
            written += 1
            if !keepAlive {
                waiting.removeAll()
                let sent = context.eventLoop.makePromise(of: Void.self)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: sent)
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                sent.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
                return
            }
            context.write(wrapOutboundOut(.end(nil)), promise: nil)
            next = waiting.isEmpty ? nil : waiting.removeValue(forKey: written)
        }
        if pausedReading && received - written <= Self.maxOutstanding / 2 { setReading(true, context) }
        scheduleFlush(context)
    }

    /// A client that pipelines without reading its answers is not read further past
    /// `maxOutstanding` unanswered requests (its answers and their state are kept here).
    private func setReading(_ on: Bool, _ context: ChannelHandlerContext) {
        pausedReading = !on
        try? context.channel.syncOptions?.setOption(.autoRead, value: on)
    }

    private func write(_ answer: GatewayAnswer, keepAlive: Bool, context: ChannelHandlerContext) {
        var headers = HTTPHeaders()
        headers.reserveCapacity(3 + answer.headers.count)
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(answer.body.count))
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        for (name, value) in answer.headers { headers.add(name: name, value: value) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))), promise: nil)
        if !answer.body.isEmpty && !answer.headOnly {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: answer.body)))), promise: nil)
        }
    }

    /// One flush for the answers that arrive together: those of a read batch at its end,
    /// those of a journal commit (queued on the loop one after the other) after the last.
    private func scheduleFlush(_ context: ChannelHandlerContext) {
        if reading {
            needsFlush = true
            return
        }
        guard !flushScheduled else { return }
        flushScheduled = true
        let handler = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let handler = handler.value
            handler.flushScheduled = false
            handler.context?.flush()
        }
    }
}
