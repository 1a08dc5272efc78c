import Engine
import Foundation
import Graph
import GraphWire
import Wire

/// Where a recorded trace runs: a coordinator, in this process (local mode) or elsewhere.
protocol TraceBackend: AnyObject {
    /// Runs `graph`, passing every saved or appended value (by its id) and each step's tokens to
    /// `deliver` as they arrive.
    func execute(_ graph: TraceGraph, deliver: (TraceEvent) -> Void) throws
    /// Runs a session's traces as one submission, back to back; events carry their trace's index.
    func executeSession(_ graphs: [TraceGraph], deliver: (Int, TraceEvent) -> Void) throws
}

/// A client of a coordinator over ZeroMQ: the trace goes out whole, saved values stream back.
/// Local mode is this same client, on `inproc://` to the coordinator of a `LocalCluster`.
final class CoordinatorClient: TraceBackend {
    let context: ZMQContext
    let socket: ZMQSocket
    let modelId: String
    let timeoutSeconds: Int
    let endpoint: String
    /// The coordinator is gone when it has answered nothing (not even a heartbeat) for this long.
    let livenessMs: Int
    /// While waiting, a heartbeat goes out when nothing has arrived for this long.
    static let heartbeatMs = 1000
    private var nextRequest: UInt64 = 1
    /// Whether the coordinator has ever answered this client (what a silence means differs).
    private var heardFromCoordinator = false
    /// CURVE keys (`--keys DIR`), and the connection's handshake events (why a silence is a refusal).
    let keys: KeyDirectory?
    private let handshakes: HandshakeMonitor?
    /// Keeps an in-process cluster alive as long as its client.
    private let cluster: LocalCluster?

    init(endpoint: String, modelId: String, timeoutSeconds: Int, livenessMs: Int = 5000, keys: KeyDirectory? = nil,
         context: ZMQContext = ZMQContext(), cluster: LocalCluster? = nil) throws {
        self.context = context
        self.cluster = cluster
        self.endpoint = endpoint
        self.livenessMs = livenessMs
        self.keys = keys
        socket = try context.socket(.dealer)
        try socket.setMaxMessageSize(WireProtocol.defaultMaxMessageBytes)
        try socket.setIdentity("client-\(getpid())-\(UUID().uuidString.prefix(8))")
        if let keys { try socket.makeCurveClient(keys.own, serverKey: try keys.requireCoordinatorKey()) }
        handshakes = endpoint.hasPrefix("inproc://") ? nil : try socket.monitorHandshakes()
        try socket.connect(endpoint)
        self.modelId = modelId
        self.timeoutSeconds = timeoutSeconds
    }

    convenience init(cluster: LocalCluster) throws {
        try self.init(endpoint: cluster.endpoint, modelId: cluster.config.architectureId, timeoutSeconds: 3600,
                      context: cluster.context, cluster: cluster)
    }

    func execute(_ graph: TraceGraph, deliver: (TraceEvent) -> Void) throws {
        let model = modelId
        let g = withDeadline(graph).wire
        try exchange({ $0.submit = .with { $0.graph = g; $0.model = model } }) { _, event in deliver(event) }
    }

    func executeSession(_ graphs: [TraceGraph], deliver: (Int, TraceEvent) -> Void) throws {
        let model = modelId
        let traces = graphs.map { withDeadline($0).wire }
        try exchange({ $0.submitSession = .with { $0.traces = traces; $0.model = model } }, deliver: deliver)
    }

    private func withDeadline(_ graph: TraceGraph) -> TraceGraph {
        var graph = graph
        graph.limits.deadlineUnixMs = UInt64((Date().timeIntervalSince1970 + Double(timeoutSeconds)) * 1000)
        return graph
    }

    /// Checks that a coordinator answers at `endpoint` (a heartbeat, answered in kind).
    func ping() throws {
        try exchange(nil) { _, _ in }
    }

    /// What the cluster is doing: its stages, workers and traces.
    func status() throws -> Nnsight_V1_ClusterStatus {
        var answer: Nnsight_V1_ClusterStatus?
        try exchange({ $0.statusRequest = Nnsight_V1_StatusRequest() }, deliver: { _, _ in }, status: { answer = $0 })
        guard let answer else { throw TraceError(.transport, "the coordinator at \(endpoint) did not answer the status request") }
        return answer
    }

    /// Sends one submission and passes what streams back to `deliver` until it finishes; with no
    /// submission, waits for the answer to a heartbeat. A coordinator that answers nothing, not
    /// even heartbeats, for `livenessMs` is gone (or was never there): a clear error, not a wait
    /// for the trace's deadline.
    private func exchange(_ body: ((inout Envelope) -> Void)?, deliver: (Int, TraceEvent) -> Void,
                          status: ((Nnsight_V1_ClusterStatus) -> Void)? = nil) throws {
        let id = nextRequest
        nextRequest += 1
        if let body {
            // Over the limit, the coordinator's socket would drop it and disconnect us without a word.
            let frame: Data
            do throws(WireError) { frame = try Framing.encode(Framing.envelope(requestId: id, body)) } catch {
                if case let .tooLarge(bytes, limit) = error {
                    throw TraceError(.overBudget, "the submission is \(bytes >> 20) MB, over the \(limit >> 20) MB message limit (large constants: compute them inside the trace, or save less)")
                }
                throw TraceError(.transport, "the submission could not be encoded: \(error)")
            }
            try socket.send(frame)
        }
        /// The number the next message about this request must carry: a gap is a lost message.
        var expected: UInt64 = 1
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds) + 5)
        // A ping's heartbeat goes out at once; a submission's when the coordinator has been quiet.
        var lastHeard = Date(), lastBeat = Date(), beatNow = body == nil, lastTurn = Date()
        while Date() < deadline {
            // This process was stalled (stopped, swapped, busy delivering): the coordinator's
            // silence meanwhile says nothing, and its messages may still be on their way in.
            if Date().timeIntervalSince(lastTurn) * 1000 > Double(Self.heartbeatMs) { lastHeard = Date() }
            lastTurn = Date()
            if beatNow || Date().timeIntervalSince(max(lastHeard, lastBeat)) * 1000 >= Double(Self.heartbeatMs) {
                beatNow = false
                try socket.send(try Framing.encode(Framing.envelope(requestId: id) {
                    $0.heartbeat = .with { $0.sentUnixMs = UInt64(Date().timeIntervalSince1970 * 1000); $0.sender = "client"; $0.awaiting = body != nil }
                }))
                lastBeat = Date()
            }
            if !heardFromCoordinator, let handshakes, !handshakes.succeeded, let failure = handshakes.failure() {
                throw TraceError(.transport, "the coordinator at \(endpoint) refused the connection: \(failure)"
                    + (keys == nil ? "; the server requires CURVE keys (--keys DIR, LanguageModel.connect(..., keys:))" : ""))
            }
            // Silence is judged only when nothing waits to be read: a client that was itself
            // stalled (stopped, swapped) finds the coordinator's messages queued for it.
            let waitStarted = Date()
            guard let frames = try socket.receive(timeoutMs: 200) else {
                // Stalled inside the wait itself: its messages may not have been read in yet.
                if Date().timeIntervalSince(waitStarted) * 1000 > Double(Self.heartbeatMs) {
                    lastHeard = Date()
                    continue
                }
                if Date().timeIntervalSince(lastHeard) * 1000 > Double(livenessMs) {
                    throw TraceError(.transport, heardFromCoordinator
                        ? "the coordinator at \(endpoint) stopped answering (nothing for \(livenessMs / 1000) s\(expected > 1 ? ", after \(expected - 1) results" : ""))"
                        : "no coordinator answered at \(endpoint) within \(livenessMs / 1000) s")
                }
                continue
            }
            lastHeard = Date()
            heardFromCoordinator = true
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frames.last ?? Data()) }
            catch { throw TraceError(.transport, "the coordinator sent an invalid message: \(error)") }
            if body == nil, envelope.requestID == id, case .heartbeat? = envelope.body { return }
            guard envelope.requestID == id else { continue }
            switch envelope.body {
            case let .error(error)? where envelope.sequence == 0:
                // From a coordinator that holds no state for this request (it restarted): it
                // cannot number what it never sent.
                throw TraceError(wire: error)
            case .saved?, .stepResult?, .finished?, .error?:
                guard envelope.sequence == expected else {
                    throw TraceError(.transport, envelope.sequence > expected
                        ? "message \(expected) of the trace's results never arrived (message \(envelope.sequence) did): \(envelope.sequence - expected) lost between the coordinator and this client"
                        : "message \(envelope.sequence) of the trace's results arrived twice")
                }
                expected += 1
            default: break
            }
            switch envelope.body {
            case let .saved(saved)? where saved.skipped:
                deliver(Int(saved.trace), .skipped(id: saved.saveID, step: Int(saved.step)))
            case let .saved(saved)?:
                do throws(WireError) {
                    deliver(Int(saved.trace), .saved(id: saved.saveID, step: Int(saved.step), value: try Tensor(wire: saved.value)))
                } catch { throw TraceError(.transport, "a saved value could not be read: \(error)") }
            case let .stepResult(result)?: deliver(0, .tokens(step: Int(result.step), ids: result.nextTokens.map { Int(truncatingIfNeeded: $0) }))
            case let .finished(finished)?:
                guard finished.messages == envelope.sequence - 1 else {
                    throw TraceError(.transport, "the coordinator sent \(finished.messages) results, \(envelope.sequence - 1) arrived")
                }
                return
            case let .status(answer)?:
                status?(answer)
                return
            case let .error(error)?: throw TraceError(wire: error)
            default: continue
            }
        }
        throw TraceError(.transport, "the coordinator did not finish within \(timeoutSeconds) s")
    }
}
