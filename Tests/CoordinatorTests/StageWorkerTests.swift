import Engine
import Foundation
import Graph
import GraphWire
import Synchronization
import Testing
import Wire
@testable import Worker

/// A stage's request lifecycle: fragments, early activations, release, expiry, bad fragments.
@Suite(.serialized) struct StageWorkerTests {
    let context = ZMQContext()
    let results: ZMQSocket
    let push: ZMQSocket
    let worker: StageWorker

    init() throws {
        let tag = UUID().uuidString
        results = try context.socket(.pull)
        try results.bind("inproc://results-\(tag)")
        push = try context.socket(.push)
        try push.connect("inproc://results-\(tag)")
        let config = try GPT2Config.load(directory: Oracle.model)
        let model = GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: config))
        worker = StageWorker(model: model, context: context, endpoints: StageEndpoints(input: "inproc://unused-\(tag)", next: nil, coordinator: ""))
        worker.stageIndex = 0
    }

    func fragment(deadline: UInt64 = 0, save: Bool = true) -> Nnsight_V1_Graph {
        let at = HookPoint(.mlp(1), .output)
        var nodes = [GraphNode(id: 1, steps: [0], line: 3, column: 5, kind: .read(ModuleRead(.mlp(1), .output)), at: at)]
        if save { nodes.append(GraphNode(id: 2, steps: [0], kind: .save(node: 1, saveID: 2), at: at)) }
        return TraceGraph(nodes: nodes, invokes: [[5, 6, 7]], generation: GenerationSpec(maxNewTokens: 1, padTokenId: 1999),
                          limits: GraphLimits(deadlineUnixMs: deadline)).wire
    }

    func submit(_ id: UInt64, _ graph: Nnsight_V1_Graph) -> Envelope { Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = graph } } }

    func activations(_ id: UInt64) -> Envelope {
        Framing.envelope(requestId: id) {
            $0.activations = .with {
                $0.tokens = HostTensor(shape: [1, 3], ints: [5, 6, 7]).wire
                $0.positions = HostTensor(shape: [1, 3], ints: [0, 1, 2]).wire
                $0.mask = HostTensor(shape: [1, 3], ints: [1, 1, 1]).wire
            }
        }
    }

    func received() throws -> [Envelope] {
        var out: [Envelope] = []
        while let frames = try results.receive(timeoutMs: 100) { out.append(try Framing.decode(frames.last!)) }
        return out
    }

    @Test func activationsThatOvertakeTheirFragmentWaitForIt() throws {
        #expect(try worker.handle(activations(1), coordinator: push, next: nil) == nil)
        #expect(worker.earlyRequests == 1 && worker.activeRequests == 0)
        #expect(try worker.handle(submit(1, fragment()), coordinator: push, next: nil) == nil)
        #expect(worker.earlyRequests == 0 && worker.activeRequests == 1 && worker.queuedSteps == 1)
        try worker.runQueued(coordinator: push, next: nil)
        #expect(worker.queuedSteps == 0)
        let messages = try received()
        #expect(messages.contains { if case let .saved(s)? = $0.body { s.saveID == 2 && s.value.shape == [1, 3, 64] } else { false } })
        #expect(messages.contains { if case let .stepResult(r)? = $0.body { r.nextTokens.count == 1 && r.finished.count == 1 } else { false } })
    }

    @Test func releaseFreesTheTraceAndDropsItsLateActivations() throws {
        _ = try worker.handle(submit(2, fragment()), coordinator: push, next: nil)
        #expect(worker.activeRequests == 1)
        _ = try worker.handle(Framing.envelope(requestId: 2) { $0.finished = .init() }, coordinator: push, next: nil)
        #expect(worker.activeRequests == 0)
        _ = try worker.handle(activations(2), coordinator: push, next: nil)
        #expect(worker.earlyRequests == 0 && worker.activeRequests == 0)
        #expect(try received().isEmpty)
    }

    @Test func expiredTracesAreReleasedAndReported() throws {
        let past = UInt64(Date().timeIntervalSince1970 * 1000) - 1000
        _ = try worker.handle(submit(3, fragment(deadline: past)), coordinator: push, next: nil)
        _ = try worker.handle(activations(4), coordinator: push, next: nil)
        #expect(worker.activeRequests == 1 && worker.earlyRequests == 1)
        try worker.dropExpiredRequests(coordinator: push, now: UInt64(Date().timeIntervalSince1970 * 1000) + UInt64(StageWorker.earlyLifetimeMs) + 1)
        #expect(worker.activeRequests == 0 && worker.earlyRequests == 0)
        let errors = try received().compactMap { if case let .error(e)? = $0.body { e } else { nil } }
        #expect(errors.count == 1 && errors[0].code == .errorDeadline && errors[0].hasStage && errors[0].message.contains("deadline passed"))
    }

    @Test func aBadFragmentIsATypedErrorNamingTheNode() throws {
        var graph = fragment()
        graph.nodes[0].read.path = "transformer.h.9.mlp"
        let reply = try #require(try worker.handle(submit(5, graph), coordinator: push, next: nil))
        let error = TraceError(wire: reply.error)
        #expect(error.kind == .invalidGraph && error.node == 1 && error.line == 3 && error.column == 5 && error.stage == 0)
        #expect(error.message.contains("unknown module 'transformer.h.9.mlp'"))
        #expect(worker.activeRequests == 0)
        // A node placed on a hook this stage does not run is refused up front.
        let other = StageWorker(model: GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: try GPT2Config.load(directory: Oracle.model), layers: 2..<4)),
                                context: context, endpoints: StageEndpoints(input: "inproc://x", next: nil, coordinator: ""))
        let refused = try #require(try other.handle(submit(6, fragment()), coordinator: push, next: nil))
        #expect(refused.error.message.contains("which this stage does not run"))
    }

    /// --kv-memory: a trace that does not fit waits (with its activations) instead of failing,
    /// and is admitted, in order, when another ends; one that could never fit is refused.
    @Test func tracesBeyondTheKVMemoryWaitInOrderAndOneTooLargeIsRefused() throws {
        let config = try GPT2Config.load(directory: Oracle.model)
        // fragment(): 3 prompt tokens, 1 new token: capacity 3 on every layer.
        let one = KVCache.byteCount(config: config, layers: 4, batch: 1, capacity: 3)
        worker.kvMemoryLimit = 2 * one
        for id in UInt64(10)...13 { _ = try worker.handle(submit(id, fragment()), coordinator: push, next: nil) }
        #expect(worker.activeRequests == 2 && worker.waitingTraces == 2 && worker.kvMemoryHeld == 2 * one)
        // A waiting trace's step is kept for it.
        _ = try worker.handle(activations(13), coordinator: push, next: nil)
        #expect(worker.earlyRequests == 1 && worker.queuedSteps == 0)
        _ = try worker.handle(Framing.envelope(requestId: 10) { $0.finished = .init() }, coordinator: push, next: nil)
        try worker.admitWaiting(coordinator: push)
        // 11 and 12 hold the memory now; 13 is next, its step still waiting with it.
        #expect(worker.activeRequests == 2 && worker.waitingTraces == 1 && worker.earlyRequests == 1)
        _ = try worker.handle(Framing.envelope(requestId: 11) { $0.cancel = .init() }, coordinator: push, next: nil)
        try worker.admitWaiting(coordinator: push)
        #expect(worker.waitingTraces == 0 && worker.earlyRequests == 0 && worker.queuedSteps == 1)
        try worker.runQueued(coordinator: push, next: nil)
        #expect(try received().contains { if case .stepResult? = $0.body { $0.requestID == 13 } else { false } })

        worker.kvMemoryLimit = one - 1
        let reply = try #require(try worker.handle(submit(20, fragment()), coordinator: push, next: nil))
        #expect(reply.error.message.contains("more than its --kv-memory"), "\(reply.error.message)")
    }

    /// --max-batch: steps beyond the pass limit wait for the next pass, oldest first.
    @Test func stepsBeyondMaxBatchRunInTheNextPassOldestFirst() throws {
        worker.maxBatch = 2
        for id in UInt64(30)...32 {
            _ = try worker.handle(submit(id, fragment()), coordinator: push, next: nil)
            _ = try worker.handle(activations(id), coordinator: push, next: nil)
        }
        #expect(worker.queuedSteps == 3)
        func stepped() throws -> [UInt64] { try received().compactMap { if case .stepResult? = $0.body { $0.requestID } else { nil } } }
        try worker.runQueued(coordinator: push, next: nil)
        #expect(try stepped().sorted() == [30, 31] && worker.queuedSteps == 1)
        try worker.runQueued(coordinator: push, next: nil)
        #expect(try stepped() == [32] && worker.queuedSteps == 0)
    }

    // Issue 15's defects on a worker's activation port (anyone who can reach it may send anything).

    /// Forged activations for traces nobody announced are kept within a bound, oldest dropped first.
    @Test func activationsForUnknownTracesAreBounded() throws {
        for id in UInt64(1000)..<4000 { _ = try worker.handle(activations(id), coordinator: push, next: nil) }
        #expect(worker.earlyRequests == StageWorker.earlyLimit)
        // The newest are the ones kept: a trace announced now still finds its step.
        _ = try worker.handle(submit(3999, fragment()), coordinator: push, next: nil)
        #expect(worker.queuedSteps == 1 && worker.earlyRequests == StageWorker.earlyLimit - 1)
    }

    /// A forged fragment asking for 2^32 - 1 new tokens is a typed error, not an allocation abort.
    @Test func anAbsurdFragmentIsRefused() throws {
        var graph = fragment()
        graph.generation.maxNewTokens = UInt32.max
        let reply = try #require(try worker.handle(submit(7, graph), coordinator: push, next: nil))
        #expect(reply.error.message.contains("n_positions"), "\(reply.error.message)")
        #expect(worker.activeRequests == 0)
    }

    /// A Shutdown sent to the activation port does not stop the worker (only its coordinator's
    /// control connection can): it goes on serving.
    @Test func aShutdownOnTheActivationPortIsIgnored() throws {
        let tag = UUID().uuidString
        let config = try GPT2Config.load(directory: Oracle.model)
        let stage = StageWorker(model: GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: config)), context: context,
                                endpoints: StageEndpoints(input: "inproc://stage-\(tag)", next: nil, coordinator: "inproc://results-\(tag)"))
        let results = try context.socket(.pull)
        try results.bind("inproc://results-\(tag)")
        final class Flags: Sendable { let stop = Atomic(false), returned = Atomic(false) }
        let flags = Flags()
        nonisolated(unsafe) let serving = stage
        Thread {
            try? serving.serve(shouldStop: { flags.stop.load(ordering: .relaxed) })
            flags.returned.store(true, ordering: .relaxed)
        }.start()
        defer { flags.stop.store(true, ordering: .relaxed) }
        Thread.sleep(forTimeInterval: 0.2)
        let input = try context.socket(.push)
        try input.connect("inproc://stage-\(tag)")
        try input.send(try Framing.encode(Framing.envelope { $0.shutdown = .with { $0.reason = "forged" } }))
        try input.send(try Framing.encode(submit(8, fragment())))
        try input.send(try Framing.encode(activations(8)))
        var gotResult = false
        let deadline = Date().addingTimeInterval(10)
        while !gotResult, Date() < deadline {
            guard let frames = try results.receive(timeoutMs: 200), let last = frames.last else { continue }
            if case .stepResult? = try Framing.decode(last).body { gotResult = true }
        }
        #expect(gotResult && !flags.returned.load(ordering: .relaxed), "the stage stopped on a forged Shutdown")
    }
}
