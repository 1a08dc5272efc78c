@testable import Coordinator
import Engine
import Foundation
import Graph
import GraphWire
import SwiftProtobuf
import Testing
import Wire
import Worker

/// Random and mutated graphs at the protobuf level, sent to the compiler and straight to a
/// worker's interpreter (which then runs a real forward pass): every one compiles and runs, or is
/// a typed error. A trap would end the test process; a hang would time the suite out.
@Suite(.serialized) struct GraphFuzzTests {
    static let config = try! GPT2Config.load(directory: Oracle.model)
    static let model = GPT2(weights: try! GPT2Weights.load(directory: Oracle.model, config: config))

    /// Valid traces to mutate: reads, ops of the registry, edits, saves, constants.
    static var seeds: [Nnsight_V1_Graph] {
        func n(_ id: UInt32, _ kind: NodeKind, step: Int = 0, invoke: Int = -1) -> GraphNode { GraphNode(id: id, steps: [step], invoke: invoke, kind: kind) }
        let generation = GenerationSpec(maxNewTokens: 3, eosTokenId: 1999, padTokenId: 1999)
        return [
            TraceGraph(nodes: [
                n(1, .read(ModuleRead(.block(1), .output))), n(2, .op(name: "tuple_item", inputs: [1], attributes: Attributes(["item": .int(0)]))),
                n(3, .op(name: "index", inputs: [2], attributes: Attributes(["index": .index([.all, .at(-1), .slice(start: 0, stop: 8, step: 2)])]))),
                n(4, .constant(.scalar(Float(0.5)))), n(5, .op(name: "mul", inputs: [3, 4], attributes: Attributes())), n(6, .save(node: 5, saveID: 6)),
                n(7, .read(ModuleRead(.lmHead, .output)), step: 1), n(8, .op(name: "argmax", inputs: [7], attributes: Attributes(["dim": .int(-1)])), step: 1),
                n(9, .append(node: 8, listID: 9), step: 1), n(10, .read(ModuleRead(.mlp(0), .output)), step: 2),
                n(11, .set(target: 10, index: [.all, .at(0)], value: 4), step: 2), n(12, .read(ModuleRead(.generator, .output))),
                n(13, .save(node: 12, saveID: 13)),
            ], invokes: [[5, 6, 7], [8, 9]], generation: generation).wire,
            TraceGraph(nodes: [
                n(1, .read(ModuleRead(.wte, .input)), invoke: 0), n(2, .op(name: "sum", inputs: [1], attributes: Attributes(["dim": .int(1), "keepdim": .bool(true)])), invoke: 0),
                n(3, .read(ModuleRead(.ln2(3), .output)), step: 1), n(4, .op(name: "softmax", inputs: [3], attributes: Attributes(["dim": .int(-1)])), step: 1),
                n(5, .op(name: "max", inputs: [4], attributes: Attributes(["dim": .int(2)])), step: 1),
                n(6, .op(name: "tuple_item", inputs: [5], attributes: Attributes(["item": .int(1)])), step: 1),
                n(7, .save(node: 6, saveID: 7), step: 1), n(8, .read(ModuleRead(.transformer, .inputs, key: "attention_mask")), step: 2),
                n(9, .save(node: 8, saveID: 9), step: 2), n(10, .save(node: 2, saveID: 10)),
            ], invokes: [[1, 2, 3, 4]], generation: generation).wire,
            // Module calls, a parameter, a replacement and a skip.
            TraceGraph(nodes: [
                n(1, .read(ModuleRead(.block(0), .output))), n(2, .op(name: "tuple_item", inputs: [1], attributes: Attributes(["item": .int(0)]))),
                n(3, .call(module: .lnF, input: 2)), n(4, .call(module: .lmHead, input: 3)), n(5, .save(node: 4, saveID: 5)),
                n(6, .parameter(module: .cFc(1), name: "bias")), n(7, .save(node: 6, saveID: 7)),
                n(8, .read(ModuleRead(.ln1(2), .input)), step: 1), n(9, .op(name: "mul", inputs: [8, 8], attributes: Attributes()), step: 1),
                n(10, .replace(target: 8, value: 9), step: 1), n(11, .skip(module: .mlp(3), value: 2)),
                n(12, .read(ModuleRead(.wte, .input))), n(14, .call(module: .wte, input: 12)), n(13, .save(node: 14, saveID: 13)),
            ], invokes: [[5, 6, 7]], generation: generation).wire,
        ]
    }

    static let paths = ["transformer.wte", "transformer.wpe", "transformer.h.0", "transformer.h.3.attn", "transformer.h.-1.mlp",
                        "transformer.h.99", "lm_head", "generator", "transformer", "transformer.h", "", "transformer.h.01.ln_1", "🙂",
                        "transformer.h.1.mlp.c_fc", "transformer.drop", "transformer.h.0.attn.attn_dropout", "generator.streamer",
                        "transformer.ln_f", "transformer.h.2.attn.c_attn"]
    static let ops = OpRegistry.ops.map(\.name) + ["", "nope", "ADD"]
    static let attributeNames = Array(Set(OpRegistry.ops.flatMap { $0.attributes.map(\.name) })).sorted() + ["x"]

    static func mutate(_ graph: Nnsight_V1_Graph, _ rng: inout SplitMix64) -> Nnsight_V1_Graph {
        var g = graph
        func pick<T>(_ values: [T]) -> T { values[Int(rng.next() % UInt64(values.count))] }
        func int() -> Int64 { pick([0, 1, -1, 2, 3, 7, -7, 64, 1999, 2000, .max, .min, Int64(rng.next() % 200) - 100]) }
        for _ in 0..<(1 + Int(rng.next() % 4)) {
            guard !g.nodes.isEmpty else { break }
            let i = Int(rng.next() % UInt64(g.nodes.count))
            switch rng.next() % 19 {
            case 0: g.nodes[i].id = UInt32(truncatingIfNeeded: int())
            case 1: g.nodes[i].steps = pick([[], [0], [1, 2], [UInt32.max], [5]])
            case 2: g.nodes[i].invoke = Int32(truncatingIfNeeded: int())
            case 3: g.nodes[i].read = .with { $0.path = pick(paths); $0.port = pick([.input, .output, .inputs, .unspecified]); $0.key = pick(["", "input_ids", "x"]) }
            case 4: g.nodes[i].op.name = pick(ops)
            case 5: g.nodes[i].op.inputs = (0..<Int(rng.next() % 4)).map { _ in UInt32(truncatingIfNeeded: int()) }
            case 6: g.nodes[i].op.attributes.append(.with { $0.name = pick(["dim", "keepdim", "index", "item", "x"]); $0.int = int() })
            case 7: g.nodes[i].op.attributes = [.with { $0.name = pick(["index", "item", "dim"])
                $0.index = .with { $0.items = (0..<Int(rng.next() % 6)).map { _ in
                    pick([.with { $0.at = int() }, .with { $0.slice = .with { $0.start = int(); $0.step = int() } }, .with { $0.ellipsis = true }, .with { $0.newAxis = true }, .init()]) } } }]
            case 8: g.nodes[i].set = .with { $0.target = UInt32(truncatingIfNeeded: int()); $0.value = UInt32(truncatingIfNeeded: int()); $0.index = [.with { $0.at = int() }] }
            case 9: g.nodes[i].constant = .with { $0.value = .with { $0.shape = [int(), 2]; $0.dtype = pick([.float32, .int64, .bool, .unspecified]); $0.data = Data(count: Int(rng.next() % 40)) } }
            case 10: g.nodes[i].at = .with { $0.path = pick(paths); $0.port = pick([.input, .output]) }
            case 11: g.nodes.remove(at: i)
            case 12: g.nodes.append(g.nodes[i])
            case 13: g.invokes = pick([[], [.init()], [.with { $0.tokenIds = [int(), 5] }], [.with { $0.tokenIds = [Int64](repeating: 3, count: 130) }]])
            case 14: g.generation.maxNewTokens = UInt32(truncatingIfNeeded: int())
            case 15:
                // An op of the registry with attributes of every kind, sizes included.
                g.nodes[i].op = .with { op in
                    op.name = pick(OpRegistry.ops.map(\.name))
                    op.inputs = (0..<Int(rng.next() % 3)).map { _ in UInt32(rng.next() % UInt64(max(g.nodes.count, 1)) + 1) }
                    op.attributes = (0..<Int(rng.next() % 4)).map { _ in
                        .with { a in
                            a.name = pick(Self.attributeNames)
                            switch rng.next() % 5 {
                            case 0: a.int = int()
                            case 1: a.float = pick([0, -1, 1e300, .nan, .infinity, 2.5])
                            case 2: a.bool = rng.next() % 2 == 0
                            case 3: a.string = pick(["", "float32", "int64", "bool", "ij,jk->ik", "i,i->", "..., x", "bij->", "a->aa"])
                            default: a.ints = .with { $0.values = (0..<Int(rng.next() % 5)).map { _ in int() } }
                            }
                        }
                    }
                }
            case 16: g.nodes[i].condition = UInt32(truncatingIfNeeded: int())
            case 17:
                // The module-level kinds: calls, parameters, skips, session values, replacements.
                let target = UInt32(truncatingIfNeeded: int()), value = UInt32(truncatingIfNeeded: int())
                switch rng.next() % 5 {
                case 0: g.nodes[i].call = .with { $0.path = pick(paths); $0.input = value }
                case 1: g.nodes[i].parameter = .with { $0.path = pick(paths); $0.name = pick(["weight", "bias", "", "x"]) }
                case 2: g.nodes[i].skip = .with { $0.path = pick(paths); $0.value = value }
                case 3: g.nodes[i].sessionValue = .with { $0.trace = UInt32(truncatingIfNeeded: int()); $0.saveID = value }
                default: g.nodes[i].set = .with { $0.target = target; $0.value = value; $0.replace = true; if rng.next() % 2 == 0 { $0.index = [.with { $0.at = int() }] } }
                }
            default: g.nodes[i].save.node = UInt32(truncatingIfNeeded: int())
            }
        }
        return g
    }

    /// Decodes, compiles and interprets one graph; returns whether it ran to the end.
    static func exercise(_ wire: Nnsight_V1_Graph) throws -> Bool {
        let graph: TraceGraph
        do throws(TraceError) { graph = try TraceGraph(wire: wire, layers: config.nLayer) } catch { return false }
        var compiled: CompiledTrace?
        do throws(TraceError) { compiled = try GraphCompiler(config: config, stages: [0..<4]).compile(graph) } catch { compiled = nil }
        // The interpreter also sees what the compiler would refuse (a worker must not trust its coordinator).
        var fragments = [graph]
        if let compiled { fragments.append(compiled.fragments[0]) }
        for var fragment in fragments {
            if fragment.nodes.contains(where: { $0.at == nil && !$0.kind.isConstant }) {
                fragment.nodes = fragment.nodes.map { var n = $0; n.at = n.at ?? HookPoint(.mlp(1), .output); return n }
            }
            let interpreter: Interpreter
            do throws(TraceError) { interpreter = try Interpreter(fragment: fragment, layers: config.nLayer, owns: { _ in true }, model: model) { _, _, _, _ in } } catch { continue }
            let prompts = fragment.invokes.filter { !$0.isEmpty && $0.count < 100 && $0.allSatisfy { $0 >= 0 && $0 < 2000 } }
            guard !prompts.isEmpty, prompts.count == fragment.invokes.count else { continue }
            let batch = PaddedBatch(prompts: prompts, padTokenId: 1999)
            let state = InferenceState(config: config, layers: 4, batch: batch.batch, capacity: batch.length + 2)
            for step in 0..<2 {
                interpreter.beginStep(step, imports: [:])
                let input = step == 0 ? batch.firstStep : StepInput.decode(tokens: [Int](repeating: 5, count: batch.batch), after: batch.firstStep.lastPositions)
                do { _ = try model.forward(input, state: state, hooks: interpreter) } catch is TraceError { break }
                _ = interpreter.endStep()
            }
        }
        return compiled != nil
    }

    @Test func theSeedsAreValid() throws {
        for seed in Self.seeds { #expect(try Self.exercise(seed)) }
    }

    @Test func mutatedGraphsAreTypedErrorsOrRun() throws {
        // FUZZ_SEED explores further by hand; CI runs the default.
        var rng = SplitMix64(seed: UInt64(ProcessInfo.processInfo.environment["FUZZ_SEED"] ?? "") ?? 2026)
        var compiled = 0
        for i in 0..<3000 {
            let seed = Self.seeds[i % Self.seeds.count]
            if try Self.exercise(Self.mutate(seed, &rng)) { compiled += 1 }
        }
        // Some mutations keep a valid graph; most do not.
        #expect(compiled > 30 && compiled < 2900, "\(compiled) of 3000 compiled")
    }

    @Test func randomBytesAreMalformedOrTyped() throws {
        var rng = SplitMix64(seed: 7)
        let valid = try Self.seeds[0].serializedData()
        var decoded = 0
        for i in 0..<2000 {
            var bytes = i % 2 == 0 ? valid : Data((0..<Int(rng.next() % 200)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            if i % 2 == 0 { for _ in 0..<3 { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) } }
            guard let graph = try? Nnsight_V1_Graph(serializedBytes: bytes) else { continue }
            decoded += 1
            _ = try Self.exercise(graph)
        }
        // Byte flips of a valid graph often still parse: those reach the compiler and interpreter.
        #expect(decoded > 25, "\(decoded) of 2000 parsed")
    }
}
