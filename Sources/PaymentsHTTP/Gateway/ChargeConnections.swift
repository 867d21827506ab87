import NIOCore
import NIOHTTP1
import NIOPosix

/// The charge path's own HTTP/1.1 client for a plain `http://` provider: keep-alive
/// connections on one event loop. With more than `pipelineAbove` calls in flight, a call
/// goes on the connection the last call went on while that one has fewer than `pipeline`
/// calls outstanding; otherwise on an idle connection, else a new one while fewer than
/// `capacity` are open, else pipelined behind earlier calls (answers come back in order),
/// never behind a call unanswered for over a second.
///
/// Why a connection takes `pipeline` calls before the next is used: a claim's batch
/// reaches the loop in one or two turns, and its calls then go out in a write per
/// connection, are read by the provider in one read, and come back in one. Spread over a
/// connection each (`pipeline` 1), every charge was a read and a write on both sides and
/// an event-loop wake-up for each: at 7,500/s the serve spent a fifth more CPU, and the
/// paced runs' p99 went from 209-2,566 ms to 166-225 with 8 (docs/benchmarks.md). A
/// provider that answers a connection's calls one after the other needs `pipeline` 1.
///
/// Why not AsyncHTTPClient for this one request: perf of the external drain (2026-12-05)
/// had its per-request machinery (a task, a request state machine, the pool's linear
/// scans, a delegate) near a quarter of the serve's CPU, and a connection held per call
/// meant one socket and one wake-up per charge on both sides. Lookups, listings and
/// refunds, which are rare, still go through AsyncHTTPClient.
///
/// Every call ends exactly once, on the loop: with its answer, at its deadline, when its
/// connection closes, or when its task is cancelled. A call whose deadline passes after
/// it was written closes its connection (a pipelined answer cannot be skipped), so the
/// calls behind it on that connection end as "no answer; outcome unknown" and are
/// retried under the same key, which the provider deduplicates.
final class ChargeConnections: Sendable {
    /// Where the charges go: `http://host[:port][/prefix]` only.
    struct Endpoint: Sendable, Equatable {
        var host: String
        var port: Int
        /// The prefix and `/v1/charges`.
        var path: String
        var hostHeader: String

        /// Nil for anything but plain HTTP (https goes through AsyncHTTPClient).
        init?(baseURL: String) {
            guard baseURL.hasPrefix("http://") else { return nil }
            let rest = baseURL.dropFirst("http://".count)
            let authority = rest.prefix { $0 != "/" }
            var prefix = String(rest.dropFirst(authority.count))
            while prefix.hasSuffix("/") { prefix.removeLast() }
            // A path NIO would refuse to write (a space, a control character) would close
            // every connection it is sent on: such a URL is left to AsyncHTTPClient's checks.
            guard prefix.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "?") && $0 != UInt8(ascii: "#") }) else { return nil }
            guard !authority.isEmpty, !authority.contains("@"), !authority.hasPrefix("[") else { return nil }
            let parts = authority.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count <= 2, !parts[0].isEmpty else { return nil }
            var port = 80
            if parts.count == 2 {
                guard let p = Int(parts[1]), (1...65535).contains(p) else { return nil }
                port = p
            }
            host = String(parts[0])
            self.port = port
            path = prefix + "/v1/charges"
            hostHeader = String(authority)
        }
    }

    enum Answer: Sendable, Equatable {
        case response(status: UInt, body: ByteBuffer)
        /// The deadline passed with the request written and no answer: outcome unknown.
        case timedOut
        /// Never written to a connection: nothing was charged by this call.
        case notSent(String)
        /// Written, and the connection ended before the whole answer: outcome unknown.
        case lost(String)
        case cancelled
    }

    let endpoint: Endpoint
    private let loop: any EventLoop
    private let pool: Pool

    /// `pipelineAbove`: the calls in flight beyond which calls share connections (tests
    /// lower it).
    init(endpoint: Endpoint, capacity: Int, pipeline: Int = 1, pipelineAbove: Int = HTTPGateway.defaultPipelineAbove,
         group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.endpoint = endpoint
        loop = group.next()
        pool = Pool(endpoint: endpoint, capacity: max(1, capacity), pipeline: max(1, pipeline), pipelineAbove: max(0, pipelineAbove), loop: loop)
    }

    /// Sends one charge; answers by `deadline`.
    func send(key: String, deadlineMillis: Int64, body: ByteBuffer, deadline: NIODeadline) async -> Answer {
        let headers = HTTPHeaders([
            ("Host", endpoint.hostHeader), ("Idempotency-Key", key), ("Request-Deadline", String(deadlineMillis)),
            ("Content-Type", "application/json"), ("Content-Length", String(body.readableBytes)),
        ])
        let call = Call(head: HTTPRequestHead(version: .http1_1, method: .POST, uri: endpoint.path, headers: headers),
                        body: body, deadline: deadline)
        let (pool, loop) = (self.pool, self.loop)
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                loop.execute { pool.submit(call, continuation) }
            }
        } onCancel: {
            loop.execute { pool.cancel(call) }
        }
    }

    /// Closes every connection; calls still waiting end as lost (or not sent).
    func shutdown() async {
        let pool = self.pool
        try? await loop.submit { pool.close() }.get()
    }

    /// How many connections are open (tests).
    var openConnections: Int {
        get async {
            let pool = self.pool
            return (try? await loop.submit { pool.slots.filter { $0.handler != nil }.count }.get()) ?? 0
        }
    }
}

/// One charge between its task and its answer. Touched only on the pool's loop.
private final class Call: @unchecked Sendable {
    enum State {
        case new
        /// Cancelled before it reached the loop: ends as soon as it does.
        case cancelledEarly
        case waiting(UnsafeContinuation<ChargeConnections.Answer, Never>)
        case done
    }

    var head: HTTPRequestHead?
    var body: ByteBuffer?
    let deadline: NIODeadline
    var state = State.new
    /// The connection it was written to, if it was, and when.
    var channel: (any Channel)?
    var sentAt = NIODeadline.distantFuture

    init(head: HTTPRequestHead, body: ByteBuffer, deadline: NIODeadline) {
        self.head = head
        self.body = body
        self.deadline = deadline
    }
}

/// One connection's place in the pool. Touched only on the pool's loop.
private final class Slot: @unchecked Sendable {
    var handler: ChargeHandler?
    var connecting = false
    /// Calls waiting for the connection to open.
    var backlog: [Call] = []
    var listedIdle = false
    var listedSpare = false

    var outstanding: Int { backlog.count + (handler?.waiting.count ?? 0) }

    /// Open or opening, with fewer than `pipeline` calls outstanding.
    func hasRoom(_ pipeline: Int) -> Bool { (handler != nil || connecting) && outstanding < pipeline }

    /// Whether a call pipelined here would wait behind one that has gone unanswered since
    /// `cutoff`: answers come back in order, so it would wait with it, up to its deadline.
    /// A connection still opening is not (its calls go out as soon as it is open).
    func isStalled(since cutoff: NIODeadline) -> Bool {
        (handler?.waiting.first?.sentAt ?? .distantFuture) < cutoff
    }
}

/// The connections and the choice among them. Touched only on its loop.
private final class Pool: @unchecked Sendable {
    let endpoint: ChargeConnections.Endpoint
    let capacity: Int
    /// Calls a connection takes before the next one is used.
    let pipeline: Int
    let loop: any EventLoop
    var slots: [Slot] = []
    /// The connection the last call went on.
    var current: Slot?
    /// Calls between their submission and their end.
    var inFlight = 0
    /// Up to this many calls in flight each call has a connection of its own: answers come
    /// back in order, so a call pipelined behind another waits for the slower of the two,
    /// which at a tenth of the drain (1,800/s, 20 ± 10 ms) cost 5 ms at the median of the
    /// gateway's stage, and there the reads and writes it saves are not missed.
    let pipelineAbove: Int
    /// Open connections with nothing outstanding.
    var idle: [Slot] = []
    /// Slots whose connection closed or never opened: reopened before a new slot is made.
    var spare: [Slot] = []
    var cursor = 0
    var closed = false
    /// Every waiting call's deadline, earliest first, and one loop timer for the earliest.
    /// NIO cancels a scheduled task by a linear search of all of the loop's timers, under a
    /// lock: a timer per call made every answer cost a scan of every call in flight. An
    /// answered call stays here until its deadline and is skipped then.
    var deadlines = DeadlineHeap()
    var timer: (deadline: NIODeadline, task: Scheduled<Void>)?

    init(endpoint: ChargeConnections.Endpoint, capacity: Int, pipeline: Int, pipelineAbove: Int, loop: any EventLoop) {
        self.endpoint = endpoint
        self.capacity = capacity
        self.pipeline = pipeline
        self.pipelineAbove = pipelineAbove
        self.loop = loop
    }

    func submit(_ call: Call, _ continuation: UnsafeContinuation<ChargeConnections.Answer, Never>) {
        if case .cancelledEarly = call.state {
            call.state = .done
            continuation.resume(returning: .cancelled)
            return
        }
        call.state = .waiting(continuation)
        inFlight += 1
        guard !closed else { return finish(call, .notSent("the gateway client is shut down")) }
        guard call.deadline > .now() else { return finish(call, .notSent("the charge's deadline passed before it was sent")) }
        deadlines.push(call)
        armTimer()
        let slot = pick()
        if let handler = slot.handler {
            send(call, on: handler)
        } else {
            slot.backlog.append(call)
            if !slot.connecting { connect(slot) }
        }
    }

    func cancel(_ call: Call) {
        switch call.state {
        case .new: call.state = .cancelledEarly
        case .waiting: finish(call, .cancelled)
        case .cancelledEarly, .done: break
        }
    }

    /// Ends a call with `answer` unless it has ended already.
    func finish(_ call: Call, _ answer: ChargeConnections.Answer) {
        guard case let .waiting(continuation) = call.state else { return }
        call.state = .done
        inFlight -= 1
        call.head = nil
        call.body = nil
        continuation.resume(returning: answer)
    }

    /// One loop timer at the earliest deadline still waiting (re-armed only when that
    /// changes: deadlines mostly arrive in order).
    func armTimer() {
        guard let earliest = deadlines.earliest else {
            timer?.task.cancel()
            timer = nil
            return
        }
        if let timer, timer.deadline <= earliest { return }
        timer?.task.cancel()
        timer = (earliest, loop.scheduleTask(deadline: earliest) { [weak self] in self?.expireDue() })
    }

    func expireDue() {
        timer = nil
        let now = NIODeadline.now()
        while let call = deadlines.popDue(now) { expire(call) }
        armTimer()
    }

    func expire(_ call: Call) {
        guard case .waiting = call.state else { return }
        if let channel = call.channel {
            finish(call, .timedOut)
            // Its answer may still come, ahead of the answers behind it: the connection
            // cannot be trusted to pair them any more.
            channel.close(promise: nil)
        } else {
            finish(call, .notSent("the charge's deadline passed before a connection to the gateway opened"))
        }
    }

    /// A call unanswered this long makes its connection one not to pipeline behind: a
    /// provider's usual answer takes milliseconds, and a hung request (a fault of the
    /// gateway, a provider's stall) would otherwise hold every call queued behind it on
    /// its connection until their deadlines.
    static let stallAfter = TimeAmount.seconds(1)

    /// The connection the last call went on while it has room and is not stalled, else an
    /// idle open connection, else a closed one reopened, else a new one while under the
    /// capacity, else the next in turn with room and not stalled, else the next not
    /// stalled (pipelined behind its calls), else the next in turn.
    func pick() -> Slot {
        let cutoff = NIODeadline.now() - Self.stallAfter
        let pipeline = inFlight > pipelineAbove ? self.pipeline : 1
        if let current, current.hasRoom(pipeline), !current.isStalled(since: cutoff) { return current }
        let slot = choose(cutoff, pipeline: pipeline)
        current = slot
        return slot
    }

    private func choose(_ cutoff: NIODeadline, pipeline: Int) -> Slot {
        while let slot = idle.popLast() {
            slot.listedIdle = false
            if slot.handler != nil && slot.outstanding == 0 { return slot }
        }
        while let slot = spare.popLast() {
            slot.listedSpare = false
            if slot.handler == nil { return slot }
        }
        if slots.count < capacity {
            let slot = Slot()
            slots.append(slot)
            return slot
        }
        // A connection with room, unless none can have any: with a pipeline of 1 room means
        // idle (the idle list is empty by now), and with every connection full a search
        // of all of them for each call would come when the server is busiest.
        if pipeline > 1 && inFlight < slots.count * pipeline {
            for _ in 0..<slots.count {
                cursor = (cursor + 1) % slots.count
                if slots[cursor].hasRoom(pipeline) && !slots[cursor].isStalled(since: cutoff) { return slots[cursor] }
            }
        }
        for _ in 0..<slots.count {
            cursor = (cursor + 1) % slots.count
            if !slots[cursor].isStalled(since: cutoff) { return slots[cursor] }
        }
        cursor = (cursor + 1) % slots.count
        return slots[cursor]
    }

    func connect(_ slot: Slot) {
        slot.connecting = true
        let endpoint = self.endpoint
        ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(2))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ChargeHandler())
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
            .whenComplete { [self] result in
                slot.connecting = false
                switch result {
                case let .success(channel):
                    guard !closed, let handler = try? channel.pipeline.syncOperations.handler(type: ChargeHandler.self) else {
                        channel.close(promise: nil)
                        return failBacklog(slot, "the gateway client is shut down")
                    }
                    slot.handler = handler
                    handler.onDrained = { [weak self] in
                        guard let self else { return }
                        if !slot.listedIdle { slot.listedIdle = true; idle.append(slot) }
                    }
                    handler.onAnswer = { [weak self] call, answer in self?.finish(call, answer) }
                    handler.onClosed = { [weak self] in
                        slot.handler = nil
                        guard let self else { return }
                        if !slot.listedSpare { slot.listedSpare = true; spare.append(slot) }
                    }
                    let backlog = slot.backlog
                    slot.backlog = []
                    for call in backlog { if case .waiting = call.state { send(call, on: handler) } }
                    if slot.outstanding == 0 { handler.onDrained?() }
                case let .failure(error):
                    failBacklog(slot, "could not connect to the gateway at \(endpoint.hostHeader): \(error)")
                }
            }
    }

    /// Writes `call` on `handler`'s connection, or ends it as not sent if that connection has
    /// closed meanwhile.
    func send(_ call: Call, on handler: ChargeHandler) {
        if !handler.send(call) {
            finish(call, .notSent("the connection to the gateway closed before the charge was written"))
        }
    }

    func failBacklog(_ slot: Slot, _ reason: String) {
        let backlog = slot.backlog
        slot.backlog = []
        for call in backlog { finish(call, .notSent(reason)) }
        if !slot.listedSpare { slot.listedSpare = true; spare.append(slot) }
    }

    func close() {
        closed = true
        timer?.task.cancel()
        timer = nil
        for slot in slots {
            failBacklog(slot, "the gateway client is shut down")
            slot.handler?.close()
        }
    }
}

/// One connection's calls in the order written, paired with its answers in order.
private final class ChargeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    /// The most of an answer's body kept (a charge is a few hundred bytes).
    static let maxBody = 64 * 1024

    var onAnswer: ((Call, ChargeConnections.Answer) -> Void)?
    var onDrained: (() -> Void)?
    var onClosed: (() -> Void)?
    private(set) var waiting = CircularBuffer<Call>()
    private var context: ChannelHandlerContext?
    private var status: UInt = 0
    private var body: ByteBuffer?
    private var keepAlive = true
    private var flushScheduled = false

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// False when the connection has closed: the call was not written.
    func send(_ call: Call) -> Bool {
        guard let context, context.channel.isActive, let head = call.head, let body = call.body else { return false }
        call.channel = context.channel
        call.sentAt = .now()
        waiting.append(call)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.write(wrapOutboundOut(.end(nil)), promise: nil)
        call.head = nil
        call.body = nil
        // One flush for every call the loop takes in this turn: a syscall per batch.
        if !flushScheduled {
            flushScheduled = true
            let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
            context.eventLoop.execute {
                bound.value.flushScheduled = false
                bound.value.context?.flush()
            }
        }
        return true
    }

    func close() { context?.close(promise: nil) }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case let .head(head):
            status = head.status.code
            keepAlive = head.isKeepAlive
            body = nil
        case var .body(chunk):
            if body == nil { body = chunk } else { body!.writeBuffer(&chunk) }
            if body!.readableBytes > Self.maxBody { context.close(promise: nil) }
        case .end:
            guard let call = waiting.popFirst() else {
                // An answer nobody asked for: the pairing is lost.
                context.close(promise: nil)
                return
            }
            onAnswer?(call, .response(status: status, body: body ?? ByteBuffer()))
            body = nil
            if !keepAlive {
                context.close(promise: nil)
            } else if waiting.isEmpty {
                onDrained?()
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        let calls = waiting
        waiting.removeAll()
        for call in calls {
            onAnswer?(call, .lost("the connection to the gateway closed before it answered; outcome unknown"))
        }
        self.context = nil
        onClosed?()
        onAnswer = nil
        onDrained = nil
        onClosed = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Calls by deadline, earliest first (a binary heap). Touched only on the pool's loop.
private struct DeadlineHeap {
    private var items: [Call] = []

    var earliest: NIODeadline? { items.first?.deadline }

    mutating func push(_ call: Call) {
        items.append(call)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].deadline < items[parent].deadline else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    /// The earliest call if its deadline is at or before `now`.
    mutating func popDue(_ now: NIODeadline) -> Call? {
        guard let first = items.first, first.deadline <= now else { return nil }
        let last = items.removeLast()
        guard !items.isEmpty else { return first }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var smallest = parent
            if left < items.count && items[left].deadline < items[smallest].deadline { smallest = left }
            if right < items.count && items[right].deadline < items[smallest].deadline { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return first
    }
}
