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
        let id = nextRequest
        nextRequest += 1
        var graph = graph
        graph.limits.deadlineUnixMs = UInt64((Date().timeIntervalSince1970 + Double(timeoutSeconds)) * 1000)
        let (g, model) = (graph.wire, modelId)
        try socket.send(try Framing.encode(Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = g; $0.model = model } }))
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds) + 5)
        while Date() < deadline {
            guard let frames = try socket.receive(timeoutMs: 200) else { continue }
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frames.last ?? Data()) }
            catch { throw TraceError(.transport, "the coordinator sent an invalid message: \(error)") }
            guard envelope.requestID == id else { continue }
            switch envelope.body {
            case let .saved(saved)? where saved.skipped:
                deliver(.skipped(id: saved.saveID, step: Int(saved.step)))
            case let .saved(saved)?:
                do throws(WireError) {
                    deliver(.saved(id: saved.saveID, step: Int(saved.step), value: try Tensor(wire: saved.value)))
                } catch { throw TraceError(.transport, "a saved value could not be read: \(error)") }
            case let .stepResult(result)?: deliver(.tokens(step: Int(result.step), ids: result.nextTokens.map { Int(truncatingIfNeeded: $0) }))
            case .finished?: return
            case let .error(error)?: throw TraceError(wire: error)
            default: continue
            }
        }
        throw TraceError(.transport, "the coordinator did not finish the trace within \(timeoutSeconds) s")
    }
}
