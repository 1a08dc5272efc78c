import Engine
import Foundation
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
/// try worker.serve()   // until a Cancel with reason "shutdown"
/// ```
public final class StageWorker {
    let model: GPT2
    let context: ZMQContext
    let endpoints: StageEndpoints
    var isLast: Bool { model.weights.hasHead }

    final class Request {
        let fragment: Nnsight_V1_Graph
        let interpreter: Interpreter
        let state: InferenceState
        var sampler: Sampler
        var finished: [Bool]
        init(fragment: Nnsight_V1_Graph, interpreter: Interpreter, state: InferenceState, sampler: Sampler, rows: Int) {
            self.fragment = fragment
            self.interpreter = interpreter
            self.state = state
            self.sampler = sampler
            finished = [Bool](repeating: false, count: rows)
        }
    }

    private var requests: [UInt64: Request] = [:]
    /// Activations that overtook their trace's fragment (different pipes are not ordered).
    private var early: [UInt64: [Envelope]] = [:]
    /// Traces ended lately, whose activations may still be on the way round the ring: dropped
    /// rather than kept as early arrivals forever. Oldest first, at most `releasedLimit`.
    private var released: [UInt64] = []
    private var releasedSet: Set<UInt64> = []
    static let releasedLimit = 4096

    private func release(_ id: UInt64) {
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
                dropExpiredRequests()
                lastSweep = Date()
            }
            let ready = try ZMQSocket.poll(sockets, timeoutMs: 100)
            if ready.count > 1, ready[1], let control, let frames = try control.receive(timeoutMs: 0) {
                lastHeard = Date()
                switch (try? Framing.decode(frames.last ?? Data()))?.body {
                case let .cancel(c)? where c.reason == "shutdown":
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
            let envelope: Envelope
            do throws(WireError) {
                envelope = try Framing.decode(frames.last ?? Data())
            } catch {
                try send(coordinator, error.reply())
                continue
            }
            let id = envelope.requestID
            switch envelope.body {
            case let .submit(submit)?:
                do {
                    requests[id] = try makeRequest(submit.graph, id: id, coordinator: coordinator)
                } catch {
                    try send(coordinator, Framing.envelope(requestId: id) { $0.error = errorMessage(error) })
                    continue
                }
                for pending in early.removeValue(forKey: id) ?? [] {
                    try handleActivations(pending, coordinator: coordinator, next: next)
                }
            case .activations?:
                if releasedSet.contains(id) { continue }
                if requests[id] == nil {
                    early[id, default: []].append(envelope)
                } else {
                    try handleActivations(envelope, coordinator: coordinator, next: next)
                }
            case .finished?:
                release(id)
            case let .cancel(cancel)?:
                if cancel.reason == "shutdown" { return }
                release(id)
            default:
                try send(coordinator, WireError.unknownMessage.reply(requestId: id))
            }
        }
    }

    /// Frees the state of traces whose deadline passed (their coordinator will not finish them).
    private func dropExpiredRequests() {
        let now = UInt64(Date().timeIntervalSince1970 * 1000)
        for (id, request) in requests where request.fragment.limits.deadlineUnixMs > 0 && request.fragment.limits.deadlineUnixMs < now {
            requests[id] = nil
        }
        early = early.filter { _, pending in !pending.isEmpty }
    }

    /// Traces this stage holds state for (a KV cache each).
    public var activeRequests: Int { requests.count }

    private func errorMessage(_ error: Error) -> Nnsight_V1_Error {
        if let e = error as? InterpreterError { return e.wire }
        return .with {
            $0.code = .errorInvalidGraph
            $0.message = "stage \(model.layers.lowerBound)..<\(model.layers.upperBound): \(error)"
        }
    }

    private func makeRequest(_ graph: Nnsight_V1_Graph, id: UInt64, coordinator: ZMQSocket) throws -> Request {
        let rows = graph.invokes.filter { !$0.tokenIds.isEmpty }.count
        let promptLength = graph.invokes.map(\.tokenIds.count).max() ?? 0
        let capacity = promptLength + Int(max(graph.generation.maxNewTokens, 1)) - 1
        let interpreter = try Interpreter(fragment: graph, layers: model.config.nLayer) { saved in
            _ = try? coordinator.send(try Framing.encode(Framing.envelope(requestId: id) { $0.saved = saved }))
        }
        let s = graph.generation.sampling
        let sampling = SamplingParameters(temperature: s.temperature, topK: Int(s.topK),
                                          topP: s.topP == 0 ? 1 : s.topP, seed: s.seed)
        return Request(fragment: graph, interpreter: interpreter,
                       state: InferenceState(config: model.config, layers: model.layers.count, batch: rows, capacity: capacity),
                       sampler: Sampler(sampling), rows: rows)
    }

    private func handleActivations(_ envelope: Envelope, coordinator: ZMQSocket, next: ZMQSocket?) throws {
        let id = envelope.requestID
        guard let request = requests[id] else { return }
        let a = envelope.activations
        do {
            let mask = try HostTensor(a.mask)
            guard case let .int64(maskValues) = mask.storage, mask.shape.count == 2 else {
                throw WireError.invalidTensor("mask must be int64 [B, T]")
            }
            let (B, T) = (mask.shape[0], mask.shape[1])
            var step = StepInput(batch: B, length: T, tokens: [], positions: [], mask: maskValues.map { UInt8(truncatingIfNeeded: $0) })
            if model.weights.hasEmbeddings {
                guard case let .int64(tokens) = try HostTensor(a.tokens).storage,
                      case let .int64(positions) = try HostTensor(a.positions).storage else {
                    throw WireError.invalidTensor("tokens and positions must be int64 [B, T]")
                }
                step.tokens = tokens.map { Int32(truncatingIfNeeded: $0) }
                step.positions = positions.map { Int32(truncatingIfNeeded: $0) }
            }
            var hidden: [Float] = []
            if !model.weights.hasEmbeddings {
                guard case let .float32(h) = try HostTensor(a.hidden).storage else { throw WireError.invalidTensor("hidden must be float32") }
                hidden = h
            }
            request.interpreter.step = Int(a.step)
            try request.interpreter.importValues(a.values)
            let output = try hidden.withUnsafeBufferPointer { h in
                try model.forward(step, hidden: model.weights.hasEmbeddings ? nil : h, state: request.state,
                                  hooks: request.interpreter)
            }
            let carried = mergeValues(a.values, request.interpreter.exportedValues())
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
            let eos = generation.hasEosTokenID ? Int(generation.eosTokenID) : nil
            let tokens = request.sampler.nextTokens(output, finished: &request.finished, eos: eos,
                                                    pad: Int(generation.padTokenID)).map(Int64.init)
            // In a ring the next step goes out first: the coordinator's copy is off the critical path.
            if let next, generation.continues(after: Int(a.step), finished: request.finished) {
                try next.send(try Framing.encode(try nextStep(after: a, tokens: tokens, values: carried, id: id)))
            }
            try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) {
                $0.stepResult = .with { $0.step = a.step; $0.nextTokens = tokens; $0.values = carried }
            }))
        } catch {
            requests[id] = nil
            try coordinator.send(try Framing.encode(Framing.envelope(requestId: id) {
                var e = errorMessage(error)
                if e.step == 0 { e.step = a.step }
                $0.error = e
            }))
        }
    }

    /// The first stage's input for the step after `a`: the sampled tokens at the positions after
    /// `a`'s last ones, all attended (what the coordinator's `TraceSession` sends when it starts
    /// the step).
    private func nextStep(after a: Nnsight_V1_StepActivations, tokens: [Int64], values: [Nnsight_V1_CrossValue],
                          id: UInt64) throws -> Envelope {
        let positions = try HostTensor(a.positions)
        guard case let .int64(p) = positions.storage, positions.shape.count == 2, positions.shape[0] == tokens.count,
              positions.shape[1] > 0 else {
            throw WireError.invalidTensor("positions must be int64 [B, T] on the last stage of a ring")
        }
        let (B, T) = (positions.shape[0], positions.shape[1])
        return Framing.envelope(requestId: id) {
            $0.activations = .with {
                $0.step = a.step + 1
                $0.tokens = HostTensor(shape: [B, 1], ints: tokens).wire
                $0.positions = HostTensor(shape: [B, 1], ints: (0..<B).map { p[$0 * T + T - 1] + 1 }).wire
                $0.mask = HostTensor(shape: [B, 1], ints: [Int64](repeating: 1, count: B)).wire
                $0.values = values
            }
        }
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
