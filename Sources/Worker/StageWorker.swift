import Engine
import Foundation
import Graph
import GraphWire
import Wire

/// Why a worker stopped serving.
public enum WorkerError: Error, CustomStringConvertible {
    case coordinatorLost(seconds: Int)
    /// The coordinator no longer counts this worker as serving (it was silent too long, or the
    /// coordinator restarted): it registers again.
    case dropped(String)
    case refused(String)
    case noAssignment(seconds: Int)

    public var description: String {
        switch self {
        case let .coordinatorLost(s): "the coordinator has been silent for \(s) s"
        case let .dropped(m): "dropped by the coordinator: \(m)"
        case let .refused(m): "the coordinator refused this worker: \(m)"
        case let .noAssignment(s): "no stage assignment within \(s) s"
        }
    }
}

/// Where a stage's messages go.
public struct StageEndpoints: Sendable {
    /// Bound PULL socket: trace fragments from the coordinator, activations from the previous stage.
    public var input: String
    /// The next stage's input. On the last stage (whose step results go to the coordinator): the
    /// first stage's input when the pipeline is a ring (the last stage starts each next step
    /// itself), or nil when the coordinator starts every step.
    public var next: String?
    /// The coordinator's PULL socket: saves, step results, errors.
    public var coordinator: String

    public init(input: String, next: String?, coordinator: String) {
        self.input = input
        self.next = next
        self.coordinator = coordinator
    }
}

/// One pipeline stage serving many traces: per request a KV cache, an interpreter for its graph
/// fragment, and (on the last stage) a sampler. Activations go straight to the next stage; saves
/// go to the coordinator as soon as they exist. All sockets belong to the thread that calls `serve`.
///
/// ```swift
/// let worker = StageWorker(model: GPT2(weights: stageWeights), context: context, endpoints: endpoints)
/// try worker.serve()   // until shouldStop, or a Shutdown from the coordinator's control socket
/// ```
public final class StageWorker {
    let model: GPT2
    let context: ZMQContext
    let endpoints: StageEndpoints
    var isLast: Bool { model.weights.hasHead }

    final class Request {
        let fragment: TraceGraph
        let interpreter: Interpreter
        /// The interpreter as a stacked pass sees it (made once; reset at every pass).
        let isolated: Isolated
        let state: InferenceState
        var sampler: Sampler
        var finished: [Bool]
        /// When it was admitted, and whether any step of it has arrived since (a fragment whose
        /// steps never come, forged or orphaned, is freed after `firstStepTimeoutMs`).
        let admittedMs = UInt64(Date().timeIntervalSince1970 * 1000)
        var stepped = false
        init(fragment: TraceGraph, interpreter: Interpreter, state: InferenceState, sampler: Sampler, rows: Int) {
            self.fragment = fragment
            self.interpreter = interpreter
            isolated = Isolated(interpreter)
            self.state = state
            self.sampler = sampler
            finished = [Bool](repeating: false, count: rows)
        }
    }

    private var requests: [UInt64: Request] = [:]
    /// The buffers of stacked passes (several traces' steps at once).
    private let stacked = BatchWorkspace()
    /// At most this many traces' steps share a pass (`--max-batch`).
    public var maxBatch = 16
    /// How long a stage with steps ready waits for more to share the pass (`--batch-window-ms`).
    public var batchWindowMs = 0.0
    /// Activations that overtook their trace's fragment (different pipes are not ordered).
    private var early: [UInt64: [Envelope]] = [:]
    /// Traces ended lately, whose activations may still be on the way round the ring: dropped
    /// rather than kept as early arrivals forever. Oldest first, at most `releasedLimit`.
    private var released: [UInt64] = []
    private var releasedSet: Set<UInt64> = []
    static let releasedLimit = 4096

    /// Frees a trace's state (its KV cache and values); later activations of it are dropped.
    func release(_ id: UInt64) {
        requests[id] = nil
        _ = takeEarly(id)
        kvBytesHeld -= heldBytes.removeValue(forKey: id) ?? 0
        waiting.removeAll { $0.id == id }
        guard releasedSet.insert(id).inserted else { return }
        released.append(id)
        if released.count > Self.releasedLimit { releasedSet.remove(released.removeFirst()) }
    }

    public init(model: GPT2, context: ZMQContext, endpoints: StageEndpoints) {
        self.model = model
        self.context = context
        self.endpoints = endpoints
    }

    /// Binds and connects the endpoints, then serves (in-process stages).
    public func serve(shouldStop: () -> Bool = { false }) throws {
        let input = try context.socket(.pull)
        try input.bind(endpoints.input)
        let coordinator = try context.push(connectingTo: endpoints.coordinator, keys: nil, serverKey: "")
        let next = try endpoints.next.map { endpoint throws -> ZMQSocket in try context.push(connectingTo: endpoint, keys: nil, serverKey: "") }
        try serve(input: input, next: next, coordinator: coordinator, control: nil, shouldStop: shouldStop)
    }

    /// Serves on sockets the caller made. `control`, when given, is a DEALER to the coordinator:
    /// heartbeats go out on it every `heartbeatMs`, and serving stops when the coordinator has
    /// been silent for `coordinatorTimeoutMs` (it is gone; the process should re-register or exit).
    public func serve(input: ZMQSocket, next initialNext: ZMQSocket?, coordinator: ZMQSocket, control: ZMQSocket?,
                      heartbeatMs: Int = 1000, coordinatorTimeoutMs: Int = 10_000, sender: String = "",
                      shouldStop: () -> Bool = { false }) throws {
        var next = initialNext
        var nextAddress = endpoints.next ?? ""
        func send(_ socket: ZMQSocket, _ envelope: Envelope) throws { try Self.send(envelope, on: socket, counting: metrics) }
        var lastBeat = Date.distantPast, lastHeard = Date(), lastSweep = Date(), lastTurn = Date()
        let sockets = [input] + (control.map { [$0] } ?? [])
        while !shouldStop() {
            metrics.process.liveness.tick()
            // This stage was busy (a long pass, a large fragment) or stalled: the coordinator's
            // answers are waiting to be read, so its silence meanwhile says nothing.
            if Date().timeIntervalSince(lastTurn) * 1000 > Double(heartbeatMs) { lastHeard = Date() }
            lastTurn = Date()
            if let control {
                if Date().timeIntervalSince(lastBeat) * 1000 >= Double(heartbeatMs) {
                    // Nothing from the coordinator since the last beat (it answers every one).
                    if lastBeat != .distantPast, lastHeard < lastBeat { metrics.process.heartbeatsMissed.increment() }
                    try send(control, Framing.envelope {
                        $0.heartbeat = .with {
                            $0.sentUnixMs = UInt64(Date().timeIntervalSince1970 * 1000)
                            $0.sender = sender
                            $0.passes = passes
                            $0.steps = stepsRun
                            $0.largestPass = UInt32(largestPass)
                            $0.traces = UInt32(requests.count)
                            $0.waitingTraces = UInt32(waiting.count)
                            $0.kvCacheBytes = UInt64(kvBytesHeld)
                        }
                    })
                    lastBeat = Date()
                }
                if Date().timeIntervalSince(lastHeard) * 1000 > Double(coordinatorTimeoutMs) {
                    throw WorkerError.coordinatorLost(seconds: coordinatorTimeoutMs / 1000)
                }
            }
            if Date().timeIntervalSince(lastSweep) > 1 {
                try dropExpiredRequests(coordinator: coordinator)
                lastSweep = Date()
            }
            let ready = try ZMQSocket.poll(sockets, timeoutMs: queue.isEmpty ? 100 : 0)
            if ready.count > 1, ready[1], let control, let frames = try control.receive(timeoutMs: 0) {
                lastHeard = Date()
                metrics.process.countReceived(frames)
                switch (try? Framing.decode(frames.last ?? Data()))?.body {
                case .shutdown?:
                    return
                case let .error(e)? where e.code == .errorWorkerLost:
                    throw WorkerError.dropped(e.message)
                case let .assignment(a)?:
                    // Re-sent when a stage was replaced: the next stage may have moved.
                    if a.nextAddress != nextAddress {
                        next = a.nextAddress.isEmpty ? nil : try context.push(connectingTo: a.nextAddress, keys: curve?.keys, serverKey: a.nextPublicKey)
                        nextAddress = a.nextAddress
                    }
                    curve?.accept(a)
                    try send(control, Framing.envelope { $0.assignment = a })
                default:
                    break
                }
            }
            // Everything that has arrived: steps of held traces queue (oldest first) for the
            // next pass, anything else is handled in the order it came.
            var received = 0
            func take(_ frames: [Data]) throws -> Bool {
                received += 1
                metrics.process.countReceived(frames)
                let envelope: Envelope
                do throws(WireError) { envelope = try Framing.decode(frames.last ?? Data()) } catch {
                    try send(coordinator, error.reply())
                    return true
                }
                recordHop(envelope)
                for e in expand(envelope) {
                    if isRunnable(e) {
                        queue.append(e)
                    } else if let reply = try handle(e, coordinator: coordinator, next: next) {
                        try send(coordinator, reply)
                    }
                }
                return true
            }
            if ready[0] {
                while received < Self.receiveLimit, let frames = try input.receive(timeoutMs: 0) {
                    guard try take(frames) else { return }
                }
            }
            // Within the window, wait for more steps to share the pass.
            if batchWindowMs > 0, !queue.isEmpty, queue.count < maxBatch {
                let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(batchWindowMs * 1e6)
                while queue.count < maxBatch, case let now = DispatchTime.now().uptimeNanoseconds, now < deadline {
                    guard try ZMQSocket.poll([input], timeoutMs: max(1, Int((deadline - now) / 1_000_000)))[0] else { break }
                    while let frames = try input.receive(timeoutMs: 0) {
                        guard try take(frames) else { return }
                    }
                }
            }
            try runQueued(coordinator: coordinator, next: next)
            if !waiting.isEmpty { try admitWaiting(coordinator: coordinator) }
            metrics.traces.set(to: Double(requests.count))
            metrics.waiting.set(to: Double(waiting.count))
            metrics.kvCache.set(to: Double(kvBytesHeld))
        }
    }

    /// Every message this stage sends goes through here: its bytes are counted.
    static func send(_ envelope: Envelope, on socket: ZMQSocket, counting metrics: StageMetrics) throws {
        let frame = try Framing.encode(envelope)
        metrics.process.countSent(frame)
        try socket.send(frame)
    }

    /// The time a step's activations spent between the sender's send and here.
    private func recordHop(_ envelope: Envelope) {
        let sent: UInt64
        switch envelope.body {
        case let .activations(a)?: sent = a.sentUnixNs
        case let .stepBatch(b)?: sent = b.sentUnixNs
        default: return
        }
        let now = WireProtocol.unixNanoseconds()
        guard sent > 0, now >= sent else { return }  // a clock behind the sender's says nothing
        hopDuration.record(.nanoseconds(Int64(now - sent)))
    }

    /// Prometheus metrics (`nnsight-worker --metrics`); the process's, shared by the stages it serves in turn.
    /// Set before serving: the histograms take the stage index at the first pass.
    public var metrics = StageMetrics()
    private lazy var passDuration = metrics.passDuration(stage: stageIndex ?? 0)
    private lazy var hopDuration = metrics.hopDuration(stage: stageIndex ?? 0)

    /// Runs the steps that are ready as one pass (continuous batching), oldest first; the rest
    /// wait for the next pass, so no trace waits more than queue length / pass size passes.
    /// A pass takes at most maxBatch traces and at most a stage's share of the traces held
    /// (held / stages, rounded up): the traces then go round the pipeline as one group per
    /// stage, and every stage has a group to work on instead of one group visiting them in turn.
    func runQueued(coordinator: ZMQSocket, next: ZMQSocket?) throws {
        guard !queue.isEmpty else { return }
        let limit = min(maxBatch, max(1, (requests.count + stageCount - 1) / max(stageCount, 1)))
        var batch: [Envelope] = [], later: [Envelope] = []
        var ids = Set<UInt64>()
        for e in queue {
            if batch.count < limit, ids.insert(e.requestID).inserted { batch.append(e) } else { later.append(e) }
        }
        queue = later
        passes += 1
        stepsRun += UInt64(batch.count)
        largestPass = max(largestPass, batch.count)
        let start = DispatchTime.now().uptimeNanoseconds
        try runSteps(batch, coordinator: coordinator, next: next)
        passDuration.record(.nanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start)))
        metrics.passes.increment()
        metrics.steps.increment(by: Int64(batch.count))
        metrics.batchSteps.record(Double(batch.count))
    }

    /// Steps waiting for a pass.
    public var queuedSteps: Int { queue.count }
    /// Forward passes run, the trace steps they ran, and the most steps one pass ran (heartbeats report them).
    public private(set) var passes: UInt64 = 0
    public private(set) var stepsRun: UInt64 = 0
    public private(set) var largestPass = 0

    /// Steps waiting for a pass, oldest first.
    private var queue: [Envelope] = []
    /// Messages taken off the input per turn of the loop (a flood cannot starve the heartbeats).
    static let receiveLimit = 256

    /// The messages an envelope carries: a stacked pass's steps, one per trace, or itself.
    private func expand(_ envelope: Envelope) -> [Envelope] {
        guard case let .stepBatch(batch)? = envelope.body else { return [envelope] }
        return batch.steps.map { step in Framing.envelope(requestId: step.requestID) { $0.activations = step.activations } }
    }

    /// A step of a trace this stage holds, which can run now.
    private func isRunnable(_ envelope: Envelope) -> Bool {
        guard case .activations? = envelope.body else { return false }
        guard let request = requests[envelope.requestID], !releasedSet.contains(envelope.requestID) else { return false }
        request.stepped = true
        return true
    }

    /// Handles one message from the input socket; returns an error reply for the coordinator, if any.
    func handle(_ envelope: Envelope, coordinator: ZMQSocket, next: ZMQSocket?) throws -> Envelope? {
        let id = envelope.requestID
        switch envelope.body {
        case let .submit(submit)?:
            do throws(TraceError) {
                let graph = try TraceGraph(wire: submit.graph, layers: model.config.nLayer)
                let bytes = try kvBytes(graph)
                try checkWidestActivation(graph)
                guard bytes <= kvLimit else {
                    throw TraceError(.overBudget, "the trace needs \(bytes >> 20) MB of KV cache on this stage, more than its --kv-memory of \(kvLimit >> 20) MB")
                }
                // Full: the trace waits (its activations with it) until others end.
                if kvBytesHeld + bytes > kvLimit || !waiting.isEmpty {
                    waiting.append((id, graph, bytes))
                    return nil
                }
                try admit(id, graph, bytes: bytes, coordinator: coordinator)
            } catch {
                release(id)
                return Framing.envelope(requestId: id) { $0.error = stageError(error).wire }
            }
        case .activations?:
            if releasedSet.contains(id) { return nil }
            if requests[id] == nil {
                guard id != 0 else { return WireError.unknownMessage.reply(requestId: 0) }
                keepEarly(envelope)
            } else {
                queue.append(envelope)
            }
        case .finished?, .cancel?:
            release(id)
        case .shutdown?:
            // Only the coordinator stops a worker, on its control connection: anyone who can reach
            // the activation port could send this one.
            return nil
        default:
            return WireError.unknownMessage.reply(requestId: id)
        }
        return nil
    }

    /// Frees the state of traces whose deadline passed and tells the coordinator, which may
    /// still be waiting for them. Activations whose fragment never came are dropped after
    /// `earlyLifetimeMs`.
    func dropExpiredRequests(coordinator: ZMQSocket, now: UInt64 = UInt64(Date().timeIntervalSince1970 * 1000)) throws {
        for (id, request) in requests where !request.stepped && now > request.admittedMs + UInt64(firstStepTimeoutMs) {
            release(id)
            let error = stageError(TraceError(.transport, "no step of the trace reached this stage within \(firstStepTimeoutMs / 1000) s of its fragment: its state was freed"))
            try Self.send(Framing.envelope(requestId: id) { $0.error = error.wire }, on: coordinator, counting: metrics)
        }
        for (id, request) in requests where request.fragment.limits.deadlineUnixMs > 0 && request.fragment.limits.deadlineUnixMs < now {
            release(id)
            let error = stageError(TraceError(.transport, "the trace's deadline passed on this stage at step \(request.interpreter.step)",
                                              step: request.interpreter.step))
            try Self.send(Framing.envelope(requestId: id) { $0.error = error.wire; $0.error.code = .errorDeadline }, on: coordinator, counting: metrics)
        }
        for w in waiting where w.graph.limits.deadlineUnixMs > 0 && w.graph.limits.deadlineUnixMs < now {
            release(w.id)
            let error = stageError(TraceError(.transport, "the trace's deadline passed on this stage while it waited for KV-cache memory"))
            try Self.send(Framing.envelope(requestId: w.id) { $0.error = error.wire; $0.error.code = .errorDeadline }, on: coordinator, counting: metrics)
        }
        let staleAfter = now &- UInt64(Self.earlyLifetimeMs)
        let waitingIDs = Set(waiting.map(\.id))
        for id in early.keys where earlyArrival[id, default: now] < staleAfter && !waitingIDs.contains(id) {
            release(id)
        }
    }

    /// A trace's first step must reach this stage this long after its fragment (`nnsight-worker
    /// --first-step-timeout`); a prompt pass on earlier stages takes seconds, not minutes.
    public var firstStepTimeoutMs = 300_000

    /// Activations wait this long for their trace's fragment before they are dropped.
    static let earlyLifetimeMs = 60_000
    /// At most this many steps and bytes of activations wait for fragments (the oldest go first):
    /// activations for traces nobody announced cannot fill the worker's memory.
    static let earlyLimit = 256
    static let earlyByteLimit = 64 << 20
    /// Arrival order of the early steps (ids may repeat, or be gone already).
    private var earlyOrder: [UInt64] = []
    private var earlyCount = 0, earlyBytes = 0

    private static func size(_ e: Envelope) -> Int { e.activations.hidden.data.count + e.activations.tokens.data.count }

    /// Keeps activations that came before their trace's fragment, within the bounds.
    private func keepEarly(_ envelope: Envelope) {
        let id = envelope.requestID
        if earlyArrival[id] == nil { earlyArrival[id] = UInt64(Date().timeIntervalSince1970 * 1000) }
        early[id, default: []].append(envelope)
        earlyOrder.append(id)
        (earlyCount, earlyBytes) = (earlyCount + 1, earlyBytes + Self.size(envelope))
        while earlyCount > Self.earlyLimit || earlyBytes > Self.earlyByteLimit, !earlyOrder.isEmpty {
            let oldest = earlyOrder.removeFirst()
            guard var waiting = early[oldest], !waiting.isEmpty else { continue }
            let dropped = waiting.removeFirst()
            (earlyCount, earlyBytes) = (earlyCount - 1, earlyBytes - Self.size(dropped))
            early[oldest] = waiting.isEmpty ? nil : waiting
            if waiting.isEmpty { earlyArrival[oldest] = nil }
        }
        if earlyOrder.count > 4 * Self.earlyLimit { earlyOrder.removeAll { early[$0] == nil } }
    }

    /// A trace's early steps, no longer kept.
    private func takeEarly(_ id: UInt64) -> [Envelope] {
        let taken = early.removeValue(forKey: id) ?? []
        earlyArrival[id] = nil
        for e in taken { (earlyCount, earlyBytes) = (earlyCount - 1, earlyBytes - Self.size(e)) }
        return taken
    }
    private var earlyArrival: [UInt64: UInt64] = [:]

    /// Traces this stage holds state for (a KV cache each).
    public var activeRequests: Int { requests.count }
    /// Traces whose activations arrived before their fragment.
    public var earlyRequests: Int { early.count }

    /// The error, located at this stage.
    private func stageError(_ error: TraceError) -> TraceError {
        var e = error
        e.stage = e.stage ?? stageIndex
        return e
    }

    /// Under CURVE: this worker's keys and the handler of its activation port's handshakes.
    public var curve: WorkerCurve?
    /// This stage's index in the pipeline (by its first layer), for error messages.
    public var stageIndex: Int?
    /// Stages in the pipeline: a pass takes at most a stage's share of the traces held.
    public var stageCount = 1

    /// Whether a hook point fires on this stage.
    func owns(_ point: HookPoint) -> Bool {
        if let layer = point.module.layerIndex { return model.layers.contains(layer) }
        return point.module.precedesLayers ? model.weights.hasEmbeddings : model.weights.hasHead
    }

    /// What one value of a trace may take on this stage (`--max-value-mb`): every op's output,
    /// and the prompt pass's widest activation, checked before anything is allocated.
    public var valueBudget = OpBudget(maxValueBytes: 1 << 30, source: "this stage's limit (--max-value-mb)")

    /// KV-cache memory when `--kv-memory` is not given: half of the machine's.
    static let defaultKVMemory: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size / 2 : 8 << 30
    }()

    /// The prompt pass's widest activation on this stage: a batch whose activations cannot be
    /// held is refused before its pass allocates them.
    private func checkWidestActivation(_ graph: TraceGraph) throws(TraceError) {
        let rows = graph.invokes.filter { !$0.isEmpty }.count, length = graph.invokes.map(\.count).max() ?? 0
        do throws(OpError) { try valueBudget.checkPromptPass(rows: rows, tokens: length, config: model.config, withHead: model.weights.hasHead) } catch {
            throw TraceError(.overBudget, error.description)
        }
    }

    /// The KV cache a trace needs on this stage, in bytes (prompt plus new tokens, every row).
    private func kvBytes(_ graph: TraceGraph) throws(TraceError) -> Int {
        let (rows, capacity) = try cacheShape(graph)
        return KVCache.byteCount(config: model.config, layers: model.layers.count, batch: rows, capacity: capacity)
    }

    private func cacheShape(_ graph: TraceGraph) throws(TraceError) -> (rows: Int, capacity: Int) {
        let rows = graph.invokes.filter { !$0.isEmpty }.count
        let promptLength = graph.invokes.map(\.count).max() ?? 0
        guard rows > 0, graph.generation.maxNewTokens >= 1,
              promptLength + graph.generation.maxNewTokens - 1 <= model.config.nPositions else {
            throw TraceError(.invalidGraph, "the trace needs prompts and max_new_tokens >= 1 within n_positions = \(model.config.nPositions)")
        }
        return (rows, promptLength + graph.generation.maxNewTokens - 1)
    }

    /// Makes a trace's state; its steps that arrived first join the queue.
    private func admit(_ id: UInt64, _ graph: TraceGraph, bytes: Int, coordinator: ZMQSocket) throws(TraceError) {
        let request = try makeRequest(graph, id: id, coordinator: coordinator)
        requests[id] = request
        heldBytes[id] = bytes
        kvBytesHeld += bytes
        let early = takeEarly(id)
        request.stepped = !early.isEmpty
        queue += early
    }

    /// Admits waiting traces, oldest first, while they fit in the KV memory (the first that does
    /// not fit blocks the rest: no trace starves behind smaller ones).
    func admitWaiting(coordinator: ZMQSocket) throws {
        while let first = waiting.first, kvBytesHeld + first.bytes <= kvLimit {
            waiting.removeFirst()
            do throws(TraceError) { try admit(first.id, first.graph, bytes: first.bytes, coordinator: coordinator) } catch {
                release(first.id)
                try Self.send(Framing.envelope(requestId: first.id) { $0.error = stageError(error).wire }, on: coordinator, counting: metrics)
            }
        }
    }

    /// KV-cache bytes this stage may hold (`--kv-memory`; nil: no limit). Traces that do not
    /// fit wait, in order, for others to end.
    public var kvMemoryLimit: Int?
    /// The KV-cache memory in force: `--kv-memory`, or half the machine's.
    private var kvLimit: Int { kvMemoryLimit ?? Self.defaultKVMemory }
    private var kvBytesHeld = 0
    private var heldBytes: [UInt64: Int] = [:]
    private var waiting: [(id: UInt64, graph: TraceGraph, bytes: Int)] = []
    /// Traces waiting for KV memory.
    public var waitingTraces: Int { waiting.count }
    /// KV-cache bytes held for this stage's traces.
    public var kvMemoryHeld: Int { kvBytesHeld }

    private func makeRequest(_ graph: TraceGraph, id: UInt64, coordinator: ZMQSocket) throws(TraceError) -> Request {
        let (rows, capacity) = try cacheShape(graph)
        let metrics = metrics  // not self: the request (held by self) keeps this closure
        let interpreter = try Interpreter(fragment: graph, layers: model.config.nLayer, owns: owns, model: model, budget: valueBudget) { saveID, step, value, append in
            try Self.send(Framing.envelope(requestId: id) {
                $0.saved = .with {
                    $0.saveID = saveID
                    $0.step = UInt32(step)
                    $0.append = append
                    if let value { $0.value = value.wire } else { $0.skipped = true }
                }
            }, on: coordinator, counting: metrics)
        }
        try graph.generation.sampling.validateAsTrace()
        return Request(fragment: graph, interpreter: interpreter,
                       state: InferenceState(config: model.config, layers: model.layers.count, batch: rows, capacity: capacity),
                       sampler: Sampler(graph.generation.sampling, prompts: graph.invokes.filter { !$0.isEmpty }, pad: graph.generation.padTokenId), rows: rows)
    }

    /// One trace's step, decoded, checked and begun: ready to run, alone or stacked with others.
    private struct ReadyStep {
        let id: UInt64
        let request: Request
        let activations: Nnsight_V1_StepActivations
        let step: StepInput
        let hidden: [Float]
    }

    /// Runs the steps of several traces that are ready now: one of them alone, several as one
    /// stacked pass (the weights read once for all). A trace whose input or graph fails ends
    /// with its error; the others go on.
    func runSteps(_ envelopes: [Envelope], coordinator: ZMQSocket, next: ZMQSocket?) throws {
        var ready: [ReadyStep] = []
        for envelope in envelopes {
            guard let request = requests[envelope.requestID] else { continue }
            do { ready.append(try prepare(envelope, request)) } catch {
                try fail(envelope.requestID, step: Int(envelope.activations.step), error, coordinator: coordinator)
            }
        }
        if ready.count == 1, let r = ready.first {
            let output: StageOutput
            do {
                output = try r.hidden.withUnsafeBufferPointer { h in
                    try model.forward(r.step, hidden: model.weights.hasEmbeddings ? nil : h, state: r.request.state, hooks: r.request.interpreter)
                }
            } catch is Interpreter.Stopped {
                return try reportStopped(r, coordinator: coordinator)
            } catch {
                return try fail(r.id, step: Int(r.activations.step), error, coordinator: coordinator)
            }
            var sends = Sends()
            complete(r, output, into: &sends, ring: next != nil)
            return try sends.flush(next: next, coordinator: coordinator, metrics: metrics)
        }
        guard ready.count > 1 else { return }
        // Each trace's hooks fail alone: a failure (or tracer.stop()) silences them for the rest
        // of the pass instead of ending the pass for every trace in it.
        let hooks = ready.map { $0.request.isolated }
        for h in hooks { h.failure = nil }
        let outputs: [StageOutput]
        do {
            outputs = try withHidden(ready[...]) { hidden in
                let entries = ready.indices.map { i in
                    BatchEntry(ready[i].step, hidden: model.weights.hasEmbeddings ? nil : hidden[i], state: ready[i].request.state, hooks: hooks[i])
                }
                return try model.forward(batch: entries, workspace: stacked)
            }
        } catch {
            // Inputs were checked for every trace: a failure here is not one trace's.
            for r in ready { try fail(r.id, step: Int(r.activations.step), error, coordinator: coordinator) }
            return
        }
        var sends = Sends()
        for (i, r) in ready.enumerated() {
            if let failure = hooks[i].failure {
                if failure is Interpreter.Stopped { try reportStopped(r, coordinator: coordinator) } else {
                    try fail(r.id, step: Int(r.activations.step), failure, coordinator: coordinator)
                }
                continue
            }
            complete(r, outputs[i], into: &sends, ring: next != nil)
        }
        try sends.flush(next: next, coordinator: coordinator, metrics: metrics)
    }

    /// `body` with a view of every step's hidden states, in order (no copies: the Engine copies
    /// them into its stacked buffer).
    private func withHidden<R>(_ steps: ArraySlice<ReadyStep>, _ views: [UnsafeBufferPointer<Float>] = [],
                               _ body: ([UnsafeBufferPointer<Float>]) throws -> R) rethrows -> R {
        guard let first = steps.first else { return try body(views) }
        return try first.hidden.withUnsafeBufferPointer { try withHidden(steps.dropFirst(), views + [$0], body) }
    }

    /// The activations of one step as the Engine's input, checked so that a stacked pass cannot
    /// fail on one trace's input; the interpreter begins the step.
    private func prepare(_ envelope: Envelope, _ request: Request) throws -> ReadyStep {
        let a = envelope.activations
        let mask = try HostTensor(a.mask)
        guard case let .int64(maskValues) = mask.storage, mask.shape.count == 2, mask.shape[0] == request.finished.count, mask.shape[1] > 0 else {
            throw WireError.invalidTensor("mask must be int64 [B, T] with B = \(request.finished.count)")
        }
        let (B, T) = (mask.shape[0], mask.shape[1])
        var step = StepInput(batch: B, length: T, tokens: [], positions: [], mask: maskValues.map { UInt8(truncatingIfNeeded: $0) })
        guard case let .int64(positions) = try HostTensor(a.positions).storage, positions.count == B * T else {
            throw WireError.invalidTensor("positions must be int64 [B, T]")
        }
        guard positions.allSatisfy({ $0 >= 0 && $0 < Int64(model.config.nPositions) }) else {
            throw WireError.invalidTensor("positions must be within n_positions = \(model.config.nPositions)")
        }
        step.positions = positions.map { Int32(truncatingIfNeeded: $0) }
        guard request.state.cache.length + T <= request.state.cache.capacity else {
            throw EngineError.promptTooLong(length: request.state.cache.length + T, limit: request.state.cache.capacity)
        }
        if model.weights.hasEmbeddings {
            guard case let .int64(tokens) = try HostTensor(a.tokens).storage, tokens.count == B * T else {
                throw WireError.invalidTensor("tokens must be int64 [B, T]")
            }
            if let bad = tokens.first(where: { $0 < 0 || $0 >= Int64(model.config.vocabSize) }) {
                throw EngineError.tokenOutOfRange(id: Int(bad), vocabSize: model.config.vocabSize)
            }
            step.tokens = tokens.map { Int32(truncatingIfNeeded: $0) }
        }
        var hidden: [Float] = []
        if !model.weights.hasEmbeddings {
            guard case let .float32(h) = try HostTensor(a.hidden).storage, h.count == B * T * model.config.nEmbd else {
                throw WireError.invalidTensor("hidden must be float32 [B, T, C] = [\(B), \(T), \(model.config.nEmbd)]")
            }
            hidden = h
        }
        var imports: [UInt32: Tensor] = [:]
        for value in a.values { imports[value.node] = try Tensor(wire: value.value) }
        request.interpreter.beginStep(Int(a.step), imports: imports)
        return ReadyStep(id: envelope.requestID, request: request, activations: a, step: step, hidden: hidden)
    }

    /// What a pass sends: each trace's input to the next stage (on the last stage, its next
    /// step round the ring), and on the last stage each trace's result for the coordinator.
    private struct Sends {
        var next: [Nnsight_V1_TraceStep] = []
        var results: [Envelope] = []

        /// The next steps first (as one message when several traces ran together: they stay
        /// together round the ring), the coordinator's copies after, off the critical path.
        func flush(next socket: ZMQSocket?, coordinator: ZMQSocket, metrics: StageMetrics) throws {
            if let socket, let first = next.first {
                let sent = WireProtocol.unixNanoseconds()
                let envelope = next.count == 1
                    ? Framing.envelope(requestId: first.requestID) { $0.activations = first.activations; $0.activations.sentUnixNs = sent }
                    : Framing.envelope { $0.stepBatch = .with { $0.steps = next; $0.sentUnixNs = sent } }
                try StageWorker.send(envelope, on: socket, counting: metrics)
            }
            for result in results { try StageWorker.send(result, on: coordinator, counting: metrics) }
        }
    }

    /// A step that ran: its exports, then the next stage's input (or, on the last stage, the
    /// next tokens: the next step and the coordinator's copy).
    private func complete(_ r: ReadyStep, _ output: StageOutput, into sends: inout Sends, ring: Bool) {
        let (id, request, a) = (r.id, r.request, r.activations)
        let exported = request.interpreter.endStep().map { id, value in Nnsight_V1_CrossValue.with { $0.node = id; $0.value = value.wire } }
        let carried = mergeValues(a.values, exported)
        guard isLast else {
            sends.next.append(.with {
                $0.requestID = id
                $0.activations = .with {
                    $0.step = a.step
                    $0.hidden = output.withValues { HostTensor.wire(floats: $0, shape: output.shape) }
                    $0.positions = a.positions
                    $0.mask = a.mask
                    $0.values = carried
                }
            })
            return
        }
        let generation = request.fragment.generation
        let tokens = request.sampler.nextTokens(output, finished: &request.finished, eos: generation.eosTokenId,
                                                pad: generation.padTokenId)
        if ring, generation.continues(after: Int(a.step), finished: request.finished) {
            sends.next.append(.with {
                $0.requestID = id
                $0.activations = Nnsight_V1_StepActivations(step: Int(a.step) + 1, input: .decode(tokens: tokens, after: r.step.lastPositions),
                                                            values: carried)
            })
        }
        let finished = request.finished
        sends.results.append(Framing.envelope(requestId: id) {
            $0.stepResult = .with { $0.step = a.step; $0.nextTokens = tokens.map(Int64.init); $0.values = carried; $0.finished = finished }
        })
    }

    /// tracer.stop(): the step ended at the stop hook; no later module, stage or step runs.
    private func reportStopped(_ r: ReadyStep, coordinator: ZMQSocket) throws {
        let rows = r.request.finished.count
        try Self.send(Framing.envelope(requestId: r.id) {
            $0.stepResult = .with { $0.step = r.activations.step; $0.stopped = true; $0.finished = [Bool](repeating: true, count: rows) }
        }, on: coordinator, counting: metrics)
    }

    /// Ends one trace with its error (the others go on).
    private func fail(_ id: UInt64, step: Int, _ error: Error, coordinator: ZMQSocket) throws {
        release(id)
        let traceError: TraceError = switch error {
        case let e as TraceError: e
        case let e as WireError: TraceError(.invalidGraph, e.description)
        default: TraceError(.runtime, "\(error)")
        }
        var e = stageError(traceError)
        e.step = e.step ?? step
        try Self.send(Framing.envelope(requestId: id) { $0.error = e.wire }, on: coordinator, counting: metrics)
    }

    /// Carried values plus this stage's exports (an export replaces a carried value of the same node).
    /// Both lists come sorted by node; most steps have nothing to merge.
    private func mergeValues(_ carried: [Nnsight_V1_CrossValue], _ exported: [Nnsight_V1_CrossValue]) -> [Nnsight_V1_CrossValue] {
        if exported.isEmpty { return carried }
        if carried.isEmpty { return exported }
        var byNode: [UInt32: Nnsight_V1_CrossValue] = [:]
        for v in carried { byNode[v.node] = v }
        for v in exported { byNode[v.node] = v }
        return byNode.keys.sorted().map { byNode[$0]! }
    }
}

/// A trace's hooks in a stacked pass: the first error (or `tracer.stop()`) is kept and the hooks
/// fall silent for the rest of the pass, so the pass goes on for the other traces.
final class Isolated: HookHandler {
    let inner: Interpreter
    var failure: Error?
    init(_ inner: Interpreter) { self.inner = inner }
    func wants(_ point: HookPoint) -> Bool { failure == nil && inner.wants(point) }
    func skips(_ module: ModuleID) -> Bool { failure == nil && inner.skips(module) }
    func replaces(_ point: HookPoint) -> Bool { failure == nil && inner.replaces(point) }
    var wantsAllLogits: Bool { failure == nil && inner.wantsAllLogits }
    func visit(_ point: HookPoint, _ value: HookValue) throws {
        guard failure == nil else { return }
        do { try inner.visit(point, value) } catch { failure = error }
    }
}

/// A worker's CURVE setting: its keypair, the coordinator's public key, and the ZAP handler
/// that lets only the coordinator and the stages that send to this one reach its activation port.
public struct WorkerCurve: Sendable {
    public let keys: CurveKeyPair
    public let coordinatorKey: String
    public let zap: ZAPHandler

    public init(keys: CurveKeyPair, coordinatorKey: String, zap: ZAPHandler) {
        self.keys = keys
        self.coordinatorKey = coordinatorKey
        self.zap = zap
    }

    /// The senders an assignment names (the previous stage; the last for stage 0), and the coordinator.
    func accept(_ assignment: Nnsight_V1_StageAssignment) {
        zap.accept(Set([coordinatorKey] + assignment.senderKeys))
    }
}
