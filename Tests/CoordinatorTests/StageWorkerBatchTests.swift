import Engine
import Foundation
import Graph
import GraphWire
import Testing
import Wire
@testable import Worker

/// A stage given several traces' steps at once runs them as one stacked pass: each trace gets its
/// own next step and result, and a trace whose graph fails in the pass ends alone.
@Suite(.serialized) struct StageWorkerBatchTests {
    @Test func aFailingTraceInAStackedPassEndsAloneAndTheOthersGoOn() throws {
        let config = try GPT2Config.load(directory: Oracle.model)
        let model = GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: config))
        let context = ZMQContext(), tag = UUID().uuidString
        let results = try context.socket(.pull), nextInput = try context.socket(.pull)
        try results.bind("inproc://results-\(tag)")
        try nextInput.bind("inproc://next-\(tag)")
        let coordinator = try context.socket(.push), next = try context.socket(.push)
        try coordinator.connect("inproc://results-\(tag)")
        try next.connect("inproc://next-\(tag)")
        let worker = StageWorker(model: model, context: context,
                                 endpoints: StageEndpoints(input: "inproc://unused-\(tag)", next: nil, coordinator: "inproc://results-\(tag)"))

        // Traces 1 and 3 save h[1]'s last row; trace 2 indexes a 64-wide vector at 1000 (fails).
        func graph(failing: Bool) -> TraceGraph {
            let at = HookPoint(.block(1), .output)
            func n(_ id: UInt32, _ kind: NodeKind) -> GraphNode { GraphNode(id: id, steps: [0], kind: kind, at: at) }
            let row = Attributes(["index": .index([.at(0), .at(-1)])])
            var nodes = [n(1, .read(ModuleRead(.block(1), .output))), n(2, .op(name: "tuple_item", inputs: [1], attributes: Attributes(["item": .int(0)]))),
                         n(3, .op(name: "index", inputs: [2], attributes: row))]
            if failing {
                nodes += [GraphNode(id: 4, steps: [0], kind: .constant(Tensor(shape: [1], ints: [1000]))),
                          n(5, .op(name: "take", inputs: [3, 4], attributes: Attributes(["dim": .int(0)]))), n(6, .save(node: 5, saveID: 6))]
            } else {
                nodes.append(n(6, .save(node: 3, saveID: 6)))
            }
            return TraceGraph(nodes: nodes, invokes: [[748, 638, 1727]], generation: GenerationSpec(maxNewTokens: 3, eosTokenId: nil, padTokenId: 1999))
        }
        var steps: [Envelope] = []
        for id in UInt64(1)...3 {
            let g = graph(failing: id == 2).wire
            _ = try worker.handle(Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = g } }, coordinator: coordinator, next: next)
            let first = Nnsight_V1_StepActivations(step: 0, input: StepInput(tokens: [748, 638, 1727]))
            steps.append(Framing.envelope(requestId: id) { $0.activations = first })
        }
        try worker.runSteps(steps, coordinator: coordinator, next: next)

        var errors: [UInt64] = [], stepResults: [UInt64] = [], saves: [UInt64] = []
        while let frames = try results.receive(timeoutMs: 200) {
            let e = try Framing.decode(frames.last ?? Data())
            switch e.body {
            case .error?: errors.append(e.requestID)
            case .stepResult?: stepResults.append(e.requestID)
            case .saved?: saves.append(e.requestID)
            default: break
            }
        }
        var nextSteps: [UInt64] = [], messagesToNext = 0
        // The traces that ran together go on together: one message with both next steps.
        while let frames = try nextInput.receive(timeoutMs: 200) {
            let e = try Framing.decode(frames.last ?? Data())
            if case let .stepBatch(batch)? = e.body { nextSteps += batch.steps.map(\.requestID) } else { nextSteps.append(e.requestID) }
            messagesToNext += 1
        }
        #expect(errors == [2])
        #expect(stepResults.sorted() == [1, 3] && saves.sorted() == [1, 3] && nextSteps.sorted() == [1, 3] && messagesToNext == 1)
        #expect(worker.activeRequests == 2)
    }
}
