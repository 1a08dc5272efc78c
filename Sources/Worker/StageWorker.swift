import Engine
import Foundation
import Graph
import GraphWire
import Wire

/// Why a worker stopped serving.
public enum WorkerError: Error, CustomStringConvertible {
    case coordinatorLost(seconds: Int)
    case refused(String)
    case noAssignment(seconds: Int)

    public var description: String {
        switch self {
        case let .coordinatorLost(s): "the coordinator has been silent for \(s) s"
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
/// try worker.serve()   // until a Shutdown message
/// ```
public final class StageWorker {
    let model: GPT2
    let context: ZMQContext
    let endpoints: StageEndpoints
    var isLast: Bool { model.weights.hasHead }

    final class Request {
        let fragment: TraceGraph
        let interpreter: Interpreter
        let state: InferenceState
        var sampler: Sampler
        var finished: [Bool]
        init(fragment: TraceGraph, interpreter: Interpreter, state: InferenceState, sampler: Sampler, rows: Int) {
            self.fragment = fragment
            self.interpreter = interpreter
            self.state = state
            self.sampler = sampler
            finished = [Bool](repeating: false, count: rows)
        }
    }

    private var requests: [UInt64: Request] = [:]
    /// The buffers of stacked passes (several traces' steps at once).
    private let stacked = BatchWorkspace()
    /// At most this many traces' steps share a pass.
    public var maxBatch = 16
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
        early[id] = nil
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
        let coordinator = try context.socket(.push)
        try coordinator.connect(endpoints.coordinator)
        let next = try endpoints.next.map { endpoint throws -> ZMQSocket in
            let socket = try context.socket(.push)
            try socket.connect(endpoint)
            return socket
        }
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
        func send(_ socket: ZMQSocket, _ envelope: Envelope) throws { try socket.send(try Framing.encode(envelope)) }
        var lastBeat = Date.distantPast, lastHeard = Date(), lastSweep = Date()
        let sockets = [input] + (control.map { [$0] } ?? [])
        while !shouldStop() {
            if let control {
                if Date().timeIntervalSince(lastBeat) * 1000 >= Double(heartbeatMs) {
                    try send(control, Framing.envelope { $0.heartbeat = .with { $0.sentUnixMs = UInt64(Date().timeIntervalSince1970 * 1000); $0.sender = sender } })
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
            let ready = try ZMQSocket.poll(sockets, timeoutMs: 100)
            if ready.count > 1, ready[1], let control, let frames = try control.receive(timeoutMs: 0) {
                lastHeard = Date()
                switch (try? Framing.decode(frames.last ?? Data()))?.body {
                case .shutdown?:
                    return
                case let .assignment(a)?:
                    // Re-sent when a stage was replaced: the next stage may have moved.
                    if a.nextAddress != nextAddress {
                        next = nil
                        if !a.nextAddress.isEmpty {
                            let socket = try context.socket(.push)
                            try socket.connect(a.nextAddress)
                            next = socket
                        }
                        nextAddress = a.nextAddress
                    }
                    try send(control, Framing.envelope { $0.assignment = a })
                default:
                    break
                }
            }
            guard ready[0], let frames = try input.receive(timeoutMs: 0) else { continue }
            func decode(_ frames: [Data]) throws -> Envelope? {
                do throws(WireError) { return try Framing.decode(frames.last ?? Data()) } catch {
                    try send(coordinator, error.reply())
                    return nil
                }
            }
            guard let envelope = try decode(frames) else { continue }
            // Steps of other traces that are ready now run in the same pass (continuous batching).
            var batch: [Envelope] = [], after: Envelope?
            if isRunnable(envelope) {
                batch.append(envelope)
                while batch.count < maxBatch, let more = try input.receive(timeoutMs: 0) {
                    guard let e = try decode(more) else { continue }
                    if isRunnable(e), !batch.contains(where: { $0.requestID == e.requestID }) {
                        batch.append(e)
                    } else {
                        after = e  // handled after the batch, in the order it came
                        break
                    }
                }
                try runSteps(batch, coordinator: coordinator, next: next)
            }
            for e in (batch.isEmpty ? [envelope] : []) + (after.map { [$0] } ?? []) {
                if let reply = try handle(e, coordinator: coordinator, next: next) { try send(coordinator, reply) }
                if case .shutdown? = e.body { return }
            }
        }
    }

    /// A step of a trace this stage holds, which can run now.
    private func isRunnable(_ envelope: Envelope) -> Bool {
        guard case .activations? = envelope.body else { return false }
        return requests[envelope.requestID] != nil && !releasedSet.contains(envelope.requestID)
    }

    /// Handles one message from the input socket; returns an error reply for the coordinator, if any.
    func handle(_ envelope: Envelope, coordinator: ZMQSocket, next: ZMQSocket?) throws -> Envelope? {
        let id = envelope.requestID
        switch envelope.body {
        case let .submit(submit)?:
            do throws(TraceError) {
                requests[id] = try makeRequest(submit.graph, id: id, coordinator: coordinator)
            } catch {
                release(id)
                return Framing.envelope(requestId: id) { $0.error = stageError(error).wire }
            }
            for pending in early.removeValue(forKey: id) ?? [] {
                try handleActivations(pending, coordinator: coordinator, next: next)
            }
        case .activations?:
            if releasedSet.contains(id) { return nil }
            if requests[id] == nil {
                early[id, default: []].append(envelope)
                if earlyArrival[id] == nil { earlyArrival[id] = UInt64(Date().timeIntervalSince1970 * 1000) }
            } else {
                try handleActivations(envelope, coordinator: coordinator, next: next)
            }
        case .finished?, .cancel?:
            release(id)
        case .shutdown?:
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
        for (id, request) in requests where request.fragment.limits.deadlineUnixMs > 0 && request.fragment.limits.deadlineUnixMs < now {
            release(id)
            let error = stageError(TraceError(.transport, "the trace's deadline passed on this stage at step \(request.interpreter.step)",
                                              step: request.interpreter.step))
            try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) { $0.error = error.wire; $0.error.code = .errorDeadline }))
        }
        let staleAfter = now &- UInt64(Self.earlyLifetimeMs)
        for id in early.keys where earlyArrival[id, default: now] < staleAfter {
            release(id)
        }
        earlyArrival = earlyArrival.filter { early[$0.key] != nil }
    }

    /// Activations wait this long for their trace's fragment before they are dropped.
    static let earlyLifetimeMs = 60_000
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

    /// This stage's index in the pipeline (by its first layer), for error messages.
    public var stageIndex: Int?

    /// Whether a hook point fires on this stage.
    func owns(_ point: HookPoint) -> Bool {
        if let layer = point.module.layerIndex { return model.layers.contains(layer) }
        return point.module.precedesLayers ? model.weights.hasEmbeddings : model.weights.hasHead
    }

    private func makeRequest(_ wire: Nnsight_V1_Graph, id: UInt64, coordinator: ZMQSocket) throws(TraceError) -> Request {
        let graph = try TraceGraph(wire: wire, layers: model.config.nLayer)
        let rows = graph.invokes.filter { !$0.isEmpty }.count
        let promptLength = graph.invokes.map(\.count).max() ?? 0
        guard rows > 0, graph.generation.maxNewTokens >= 1,
              promptLength + graph.generation.maxNewTokens - 1 <= model.config.nPositions else {
            throw TraceError(.invalidGraph, "the trace needs prompts and max_new_tokens >= 1 within n_positions = \(model.config.nPositions)")
        }
        let capacity = promptLength + graph.generation.maxNewTokens - 1
        let interpreter = try Interpreter(fragment: graph, layers: model.config.nLayer, owns: owns, model: model) { saveID, step, value, append in
            try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) {
                $0.saved = .with {
                    $0.saveID = saveID
                    $0.step = UInt32(step)
                    $0.append = append
                    if let value { $0.value = value.wire } else { $0.skipped = true }
                }
            }))
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

    private func handleActivations(_ envelope: Envelope, coordinator: ZMQSocket, next: ZMQSocket?) throws {
        try runSteps([envelope], coordinator: coordinator, next: next)
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
            do { try complete(r, output, coordinator: coordinator, next: next) } catch {
                try fail(r.id, step: Int(r.activations.step), error, coordinator: coordinator)
            }
            return
        }
        guard ready.count > 1 else { return }
        // Each trace's hooks fail alone: a failure (or tracer.stop()) silences them for the rest
        // of the pass instead of ending the pass for every trace in it.
        let hooks = ready.map { Isolated($0.request.interpreter) }
        let buffers = ready.map { r -> UnsafeMutableBufferPointer<Float> in
            let b = UnsafeMutableBufferPointer<Float>.allocate(capacity: r.hidden.count)
            _ = b.initialize(from: r.hidden)
            return b
        }
        defer { for b in buffers { b.deallocate() } }
        let entries = ready.indices.map { i in
            BatchEntry(ready[i].step, hidden: model.weights.hasEmbeddings ? nil : UnsafeBufferPointer(buffers[i]), state: ready[i].request.state,
                       hooks: hooks[i])
        }
        let outputs: [StageOutput]
        do { outputs = try model.forward(batch: entries, workspace: stacked) } catch {
            // Inputs were checked for every trace: a failure here is not one trace's.
            for r in ready { try fail(r.id, step: Int(r.activations.step), error, coordinator: coordinator) }
            return
        }
        for (i, r) in ready.enumerated() {
            if let failure = hooks[i].failure {
                if failure is Interpreter.Stopped { try reportStopped(r, coordinator: coordinator) } else {
                    try fail(r.id, step: Int(r.activations.step), failure, coordinator: coordinator)
                }
                continue
            }
            do { try complete(r, outputs[i], coordinator: coordinator, next: next) } catch {
                try fail(r.id, step: Int(r.activations.step), error, coordinator: coordinator)
            }
        }
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

    /// A step that ran: its exports, then the next stage's input (or, on the last stage, the
    /// next tokens: the next step first, the coordinator's copy after).
    private func complete(_ r: ReadyStep, _ output: StageOutput, coordinator: ZMQSocket, next: ZMQSocket?) throws {
        let (id, request, a) = (r.id, r.request, r.activations)
        let exported = request.interpreter.endStep().map { id, value in Nnsight_V1_CrossValue.with { $0.node = id; $0.value = value.wire } }
        let carried = mergeValues(a.values, exported)
        guard isLast else {
            let out = Framing.envelope(requestId: id) {
                $0.activations = .with {
                    $0.step = a.step
                    $0.hidden = output.withValues { HostTensor.wire(floats: $0, shape: output.shape) }
                    $0.positions = a.positions
                    $0.mask = a.mask
                    $0.values = carried
                }
            }
            try next?.send(try Framing.encode(out))
            return
        }
        let generation = request.fragment.generation
        let tokens = request.sampler.nextTokens(output, finished: &request.finished, eos: generation.eosTokenId,
                                                pad: generation.padTokenId)
        // In a ring the next step goes out first: the coordinator's copy is off the critical path.
        if let next, generation.continues(after: Int(a.step), finished: request.finished) {
            let input = Nnsight_V1_StepActivations(step: Int(a.step) + 1, input: .decode(tokens: tokens, after: r.step.lastPositions),
                                                   values: carried)
            try next.send(try Framing.encode(Framing.envelope(requestId: id) { $0.activations = input }))
        }
        let finished = request.finished
        try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) {
            $0.stepResult = .with { $0.step = a.step; $0.nextTokens = tokens.map(Int64.init); $0.values = carried; $0.finished = finished }
        }))
    }

    /// tracer.stop(): the step ended at the stop hook; no later module, stage or step runs.
    private func reportStopped(_ r: ReadyStep, coordinator: ZMQSocket) throws {
        let rows = r.request.finished.count
        try coordinator.send(try Framing.encode(Framing.envelope(requestId: r.id) {
            $0.stepResult = .with { $0.step = r.activations.step; $0.stopped = true; $0.finished = [Bool](repeating: true, count: rows) }
        }))
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
        try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) { $0.error = e.wire }))
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
private final class Isolated: HookHandler {
    let inner: Interpreter
    var failure: Error?
    init(_ inner: Interpreter) { self.inner = inner }
    func wants(_ point: HookPoint) -> Bool { failure == nil && inner.wants(point) }
    func skips(_ module: ModuleID) -> Bool { failure == nil && inner.skips(module) }
    func replaces(_ point: HookPoint) -> Bool { failure == nil && inner.replaces(point) }
    func visit(_ point: HookPoint, _ value: HookValue) throws {
        guard failure == nil else { return }
        do { try inner.visit(point, value) } catch { failure = error }
    }
}
