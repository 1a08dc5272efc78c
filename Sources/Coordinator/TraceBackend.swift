import Engine
import Foundation
import Wire
import Worker

/// Where a recorded trace runs: stages in this process, or a coordinator elsewhere.
protocol TraceBackend: AnyObject {
    /// Runs `graph` (recorded nodes, invokes, generation parameters), passing every saved or
    /// appended value (by its node id) and each step's tokens to `deliver` as they arrive.
    func execute(_ graph: Nnsight_V1_Graph, deliver: (TraceEvent) -> Void) throws
}

/// In-process stages over inproc ZeroMQ (`LanguageModel.load`).
final class LocalBackend: TraceBackend {
    let cluster: LocalCluster
    let runner: TraceRunner

    init(cluster: LocalCluster) throws {
        self.cluster = cluster
        runner = try TraceRunner(context: cluster.context, stageEndpoints: cluster.stageEndpoints,
                                 coordinatorEndpoint: cluster.coordinatorEndpoint)
    }

    deinit { cluster.shutdown(using: runner.pushes) }

    func execute(_ graph: Nnsight_V1_Graph, deliver: (TraceEvent) -> Void) throws {
        let compiled = try GraphCompiler(config: cluster.config, stages: cluster.stages).compile(
            nodes: graph.nodes, invokes: graph.invokes, generation: graph.generation, limits: graph.limits, problems: [])
        let prompts = graph.invokes.map { $0.tokenIds.map(Int.init) }
        let outcome = try runner.run(compiled, prompts: prompts, generation: graph.generation, onTokens: { step, ids in
            deliver(.tokens(step: step, ids: ids))
        }) { saved in
            deliver(.saved(id: saved.saveID, step: Int(saved.step), value: NDArray((try? HostTensor(saved.value)) ?? HostTensor(shape: [0], floats: []))))
        }
        for (id, value) in try ClientNodes.evaluate(compiled.clientNodes, outcome: outcome, invokes: graph.invokes.count) {
            deliver(.saved(id: id, step: outcome.steps, value: value))
        }
    }
}

/// A coordinator over ZeroMQ: the trace goes out whole, saved values stream back.
final class RemoteBackend: TraceBackend {
    let context = ZMQContext()
    let socket: ZMQSocket
    let modelId: String
    let timeoutSeconds: Int
    private var nextRequest: UInt64 = 1

    init(endpoint: String, modelId: String, timeoutSeconds: Int) throws {
        socket = try context.socket(.dealer)
        try socket.setIdentity("client-\(getpid())-\(UUID().uuidString.prefix(8))")
        try socket.connect(endpoint)
        self.modelId = modelId
        self.timeoutSeconds = timeoutSeconds
    }

    func execute(_ graph: Nnsight_V1_Graph, deliver: (TraceEvent) -> Void) throws {
        let id = nextRequest
        nextRequest += 1
        var graph = graph
        graph.limits.deadlineUnixMs = UInt64((Date().timeIntervalSince1970 + Double(timeoutSeconds)) * 1000)
        let (g, model) = (graph, modelId)
        try socket.send(try Framing.encode(Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = g; $0.model = model } }))
        let deadline = Date().addingTimeInterval(Double(timeoutSeconds) + 5)
        while Date() < deadline {
            guard let frames = try socket.receive(timeoutMs: 200) else { continue }
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frames.last ?? Data()) }
            catch { throw TraceError.transport("the coordinator sent an invalid message: \(error)") }
            guard envelope.requestID == id else { continue }
            switch envelope.body {
            case let .saved(saved)?: deliver(.saved(id: saved.saveID, step: Int(saved.step), value: NDArray(try HostTensor(saved.value))))
            case let .stepResult(result)?: deliver(.tokens(step: Int(result.step), ids: result.nextTokens.map(Int.init)))
            case .finished?: return
            case let .error(error)?:
                throw error.code == .errorInvalidGraph && error.worker.isEmpty && error.step == 0 && error.message.hasPrefix("invalid trace:")
                    ? TraceError.invalidGraph(String(error.message.dropFirst("invalid trace: ".count)))
                    : TraceError.runtime(error.message)
            default: continue
            }
        }
        throw TraceError.transport("the coordinator did not finish the trace within \(timeoutSeconds) s")
    }
}
