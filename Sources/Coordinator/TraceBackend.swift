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
    private var nextRequest: UInt64 = 1
    /// Keeps an in-process cluster alive as long as its client.
    private let cluster: LocalCluster?

    init(endpoint: String, modelId: String, timeoutSeconds: Int, context: ZMQContext = ZMQContext(), cluster: LocalCluster? = nil) throws {
        self.context = context
        self.cluster = cluster
        socket = try context.socket(.dealer)
        try socket.setMaxMessageSize(WireProtocol.defaultMaxMessageBytes)
        try socket.setIdentity("client-\(getpid())-\(UUID().uuidString.prefix(8))")
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

    /// Sends one submission and passes what streams back to `deliver` until it finishes.
    private func exchange(_ body: (inout Envelope) -> Void, deliver: (Int, TraceEvent) -> Void) throws {
        let id = nextRequest
        nextRequest += 1
        try socket.send(try Framing.encode(Framing.envelope(requestId: id, body)))
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds) + 5)
        while Date() < deadline {
            guard let frames = try socket.receive(timeoutMs: 200) else { continue }
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frames.last ?? Data()) }
            catch { throw TraceError(.transport, "the coordinator sent an invalid message: \(error)") }
            guard envelope.requestID == id else { continue }
            switch envelope.body {
            case let .saved(saved)? where saved.skipped:
                deliver(Int(saved.trace), .skipped(id: saved.saveID, step: Int(saved.step)))
            case let .saved(saved)?:
                do throws(WireError) {
                    deliver(Int(saved.trace), .saved(id: saved.saveID, step: Int(saved.step), value: try Tensor(wire: saved.value)))
                } catch { throw TraceError(.transport, "a saved value could not be read: \(error)") }
            case let .stepResult(result)?: deliver(0, .tokens(step: Int(result.step), ids: result.nextTokens.map { Int(truncatingIfNeeded: $0) }))
            case .finished?: return
            case let .error(error)?: throw TraceError(wire: error)
            default: continue
            }
        }
        throw TraceError(.transport, "the coordinator did not finish within \(timeoutSeconds) s")
    }
}
