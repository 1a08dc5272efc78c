@testable import Coordinator
import Engine
import Foundation
import Graph
import Testing

/// Each pass of the compiler on hand-built graphs (tiny-gpt2's shape: 4 layers, 64 hidden, 2000 ids).
struct GraphCompilerTests {
    let config = try! GPT2Config.load(directory: Oracle.model)
    var compiler: GraphCompiler { GraphCompiler(config: config, stages: [0..<2, 2..<4]) }

    func node(_ id: UInt32, _ kind: NodeKind, step: Int = 0, invoke: Int = -1, line: Int = 0, column: Int = 0) -> GraphNode {
        GraphNode(id: id, steps: [step], invoke: invoke, line: line, column: column, kind: kind)
    }
    func graph(_ nodes: [GraphNode], prompt: Int = 5, steps: Int = 3) -> TraceGraph {
        TraceGraph(nodes: nodes, invokes: [Array(0..<prompt)], generation: GenerationSpec(maxNewTokens: steps, padTokenId: 1999))
    }
    func read(_ m: ModuleID, _ port: ModuleRead.Port = .output) -> NodeKind { .read(ModuleRead(m, port)) }
    func op(_ name: String, _ inputs: [UInt32], _ a: [String: Attribute] = [:]) -> NodeKind {
        .op(name: name, inputs: inputs, attributes: Attributes(a))
    }
    func expectError(_ g: TraceGraph, _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try compiler.compile(g)
            Issue.record("compiled", sourceLocation: sourceLocation)
        } catch {
            for f in fragments { #expect(error.description.contains(f), "\(error.description) lacks \(f)", sourceLocation: sourceLocation) }
        }
    }

    @Test func validateRefusesWhatAClientCouldSend() throws {
        expectError(graph([node(1, read(.mlp(0))), node(2, op("frobnicate", [1]), line: 4, column: 9)]), ["unknown op 'frobnicate'", "line 4:9"])
        expectError(graph([node(1, op("neg", [2])), node(2, read(.mlp(0)))]), ["node 1 uses node 2, which does not exist before it"])
        expectError(graph([node(1, read(.mlp(0)), step: 3)]), ["step 3 is beyond max_new_tokens = 3"])
        expectError(graph([node(1, read(.mlp(0))), node(1, read(.mlp(1)))]), ["node id 1 is used twice"])
        expectError(graph([node(1, read(.mlp(0)), invoke: 2)]), ["invoke 2, which does not exist"])
        expectError(graph([node(1, read(.mlp(7)))]), ["unknown module 'transformer.h[7].mlp'"])
        expectError(graph([node(1, read(.transformer, .output))]), ["has no output"])
        expectError(graph([node(1, read(.mlp(0))), node(2, op("sum", [1], ["dim": .bool(true)]))]), ["sum: attribute 'dim' must be int"])
        expectError(graph([node(1, read(.mlp(0))), node(2, op("add", [1]))]), ["add takes 2 inputs, got 1"])
        var g = graph([])
        g.invokes = [[5, 2000]]
        expectError(g, ["token id 2000 is outside the vocabulary of 2000"])
        g.invokes = [Array(repeating: 1, count: 127)]
        expectError(g, ["exceeds n_positions = 128"])
        g = graph([node(1, read(.mlp(0))), node(2, read(.mlp(1)))])
        g.limits.maxNodes = 1
        expectError(g, ["over the limit of 1"])
    }

    @Test func classifySplitsWorkerClientAndConstants() throws {
        var c = try compiler.validate(graph([
            node(1, read(.mlp(0))), node(2, read(.generator)), node(3, .constant(.scalar(Float(2)))),
            node(4, op("mul", [2, 3])), node(5, op("mul", [1, 3])),
        ]))
        try compiler.classify(&c)
        #expect(c.placement == [1: .worker, 2: .client, 3: .constant, 4: .client, 5: .worker])
        // An op of constants only is folded into a constant.
        var folded = try compiler.validate(graph([node(1, .constant(.scalar(Float(3)))), node(2, .constant(Tensor(shape: [2], floats: [1, 2]))),
                                                  node(3, op("mul", [1, 2]))]))
        try compiler.classify(&folded)
        #expect(folded.placement[3] == .constant)
        if case let .constant(t) = folded.node(3).kind { #expect(t.floats == [3, 6]) } else { Issue.record("not folded") }
        expectError(graph([node(1, read(.mlp(0))), node(2, read(.generator)), node(3, op("add", [1, 2]))]),
                    ["node 3 combines a model value (node 1) with model.generator.output"])
        expectError(graph([node(1, read(.mlp(0))), node(2, op("neg", [1])), node(3, .set(target: 2, index: [], value: 1))]),
                    ["only a module's output or input (or its [0]) can be assigned to"])
        expectError(graph([node(1, read(.mlp(0))), node(2, read(.generator)), node(3, .set(target: 1, index: [], value: 2))]),
                    ["exist only on the coordinator"])
    }

    @Test func placeRunsEachNodeAtTheEarliestHookItsInputsAllow() throws {
        var c = try compiler.validate(graph([
            node(1, read(.mlp(0)), step: 1), node(2, read(.block(3))), node(3, op("tuple_item", [2], ["item": .int(0)])),
            node(4, op("add", [1, 3])), node(5, .set(target: 1, index: [], value: 3), step: 1),
        ]))
        try compiler.classify(&c)
        try compiler.place(&c)
        #expect(c.hook[4] == HookPoint(.mlp(0), .output) && c.position[4]?.step == 1)
        #expect(c.hook[5] == HookPoint(.mlp(0), .output))
        expectError(graph([node(1, read(.block(3))), node(2, op("tuple_item", [1], ["item": .int(0)])),
                           node(3, read(.block(0))), node(4, op("tuple_item", [3], ["item": .int(0)])),
                           node(5, .set(target: 4, index: [], value: 2))]),
                    ["transformer.h[3].output at step 0 is used before it can exist", "written into transformer.h[0].output at step 0"])
    }

    @Test func inferTypesKnowsEveryShapeBeforeAnythingRuns() throws {
        var c = try compiler.validate(graph([
            node(1, read(.block(0))), node(2, op("tuple_item", [1], ["item": .int(0)])),
            node(3, op("index", [2], ["index": .index([.all, .at(-1)])])), node(4, read(.lmHead), step: 1),
            node(5, op("argmax", [4], ["dim": .int(-1)]), step: 1), node(6, .read(ModuleRead(.transformer, .inputs, key: "attention_mask")), step: 2),
        ]))
        try compiler.classify(&c)
        try compiler.place(&c)
        try compiler.inferTypes(&c)
        #expect(c.types[1] == .tuple([TensorType(shape: [1, 5, 64], dtype: .float32)]))
        #expect(c.types[3] == .tensor(TensorType(shape: [1, 64], dtype: .float32)))
        #expect(c.types[5] == .tensor(TensorType(shape: [1, 1], dtype: .int64)))
        #expect(c.types[6] == .tensor(TensorType(shape: [1, 7], dtype: .int64)))
        expectError(graph([node(1, read(.mlp(0))), node(2, op("index", [1], ["index": .index([.all, .slice(start: 0, stop: 4, step: nil)])])),
                           node(3, read(.mlp(1))), node(4, op("add", [2, 3]), line: 7, column: 5)]),
                    ["line 7:5", "transformer.h[1].mlp.output", "shapes [1, 4, 64] and [1, 5, 64] cannot be broadcast together"])
        expectError(graph([node(1, read(.mlp(0))), node(2, op("index", [1], ["index": .index([.all, .all, .slice(start: 0, stop: 3, step: nil)])])),
                           node(3, .set(target: 1, index: [], value: 2))]),
                    ["value tensor of shape [1, 5, 3] cannot be broadcast to indexing result of shape [1, 5, 64]"])
        expectError(graph([node(1, read(.lmHead)), node(2, op("index", [1], ["index": .index([.at(0), .at(50)])]))]),
                    ["at step 0", "lm_head.output", "index 50 is out of bounds for dimension 1 with size 1"])  // a generation: the last position
    }

    @Test func partitionSendsNodesToTheirStagesAndListsCrossings() throws {
        let compiled = try compiler.compile(graph([
            node(1, read(.mlp(0))), node(2, .constant(.scalar(Float(2)))), node(3, op("mul", [1, 2])),
            node(4, read(.mlp(3))), node(5, .set(target: 4, index: [], value: 3)),
            node(6, .save(node: 3, saveID: 6)), node(7, read(.lmHead)), node(8, op("argmax", [7], ["dim": .int(-1)])),
            node(9, read(.block(0)), step: 1), node(10, op("tuple_item", [9], ["item": .int(0)]), step: 1),
            node(11, op("index", [8], ["index": .index([.at(0), .at(-1)])])),
            node(12, .set(target: 10, index: [.all, .all, .slice(start: 0, stop: 1, step: nil)], value: 11), step: 1),
            node(13, read(.generator)), node(14, op("mul", [13, 2])), node(15, .save(node: 14, saveID: 15)),
        ]))
        let ids = compiled.fragments.map { $0.nodes.map(\.id) }
        #expect(ids[0] == [2, 1, 3, 6, 9, 10, 12])
        #expect(ids[1] == [4, 5, 7, 8, 11])
        // 3 goes forward to the edit on stage 1; 11 (last stage, step 0) comes back to stage 0 at step 1.
        #expect(compiled.fragments[0].exports == [3] && compiled.fragments[1].exports == [11])
        #expect(compiled.clientNodes.map(\.id) == [2, 13, 14, 15])
        #expect(compiled.fragments[0].nodes.first { $0.id == 12 }?.steps == [1])
    }
}
