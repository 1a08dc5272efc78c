import Engine
import Foundation
import Graph
import Testing
import Worker

/// The worker's interpreter on a real forward pass: values that outlive their hook are copies
/// (the live buffer changes at the next step), and every value is freed after its last use.
struct InterpreterTests {
    /// Records `mlp(1).output` at every step, as the Engine hands it over.
    final class Capture: HookHandler {
        var steps: [[Float]] = []
        func wants(_ p: HookPoint) -> Bool { p == HookPoint(.mlp(1), .output) }
        func visit(_ p: HookPoint, _ v: HookValue) throws {
            if case let .floats(b, _) = v { steps.append(Array(b)) }
        }
    }

    @Test func keptValuesAreCopiesAndEveryValueIsFreed() throws {
        let config = try GPT2Config.load(directory: Oracle.model)
        let model = GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: config))
        let at = HookPoint(.mlp(1), .output)
        func n(_ id: UInt32, _ step: Int, _ kind: NodeKind) -> GraphNode { GraphNode(id: id, steps: [step], kind: kind, at: at) }
        let lastRow = Attributes(["index": .index([.all, .at(-1)])])
        let fragment = TraceGraph(nodes: [
            n(1, 0, .read(ModuleRead(.mlp(1), .output))), n(2, 0, .op(name: "index", inputs: [1], attributes: lastRow)),
            n(3, 0, .save(node: 2, saveID: 3)),
            n(4, 1, .read(ModuleRead(.mlp(1), .output))), n(5, 1, .op(name: "add", inputs: [4, 2], attributes: Attributes())),
            n(6, 1, .save(node: 5, saveID: 6)),
        ], invokes: [[5, 6, 7]], generation: GenerationSpec(maxNewTokens: 2))
        var saved: [UInt32: Tensor] = [:]
        let interpreter = try Interpreter(fragment: fragment, layers: config.nLayer, owns: { _ in true }) { id, _, value, _ in
            saved[id] = value?.contiguous()
        }
        let capture = Capture()
        final class Both: HookHandler {
            let a: HookHandler, b: HookHandler
            init(_ a: HookHandler, _ b: HookHandler) { (self.a, self.b) = (a, b) }
            func wants(_ p: HookPoint) -> Bool { a.wants(p) || b.wants(p) }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                if a.wants(p) { try a.visit(p, v) }
                if b.wants(p) { try b.visit(p, v) }
            }
        }
        let hooks = Both(capture, interpreter)
        let state = InferenceState(config: config, layers: 4, batch: 1, capacity: 4)
        let first = StepInput(tokens: [5, 6, 7])
        interpreter.beginStep(0, imports: [:])
        _ = try model.forward(first, state: state, hooks: hooks)
        _ = interpreter.endStep()
        #expect(interpreter.liveValueCount == 1, "only node 2 is used later")
        interpreter.beginStep(1, imports: [:])
        _ = try model.forward(.decode(tokens: [8], after: first.lastPositions), state: state, hooks: hooks)
        _ = interpreter.endStep()
        #expect(interpreter.liveValueCount == 0)

        let C = config.nEmbd
        let step0Last = Array(capture.steps[0][(2 * C)..<(3 * C)])
        #expect(try #require(saved[3]).floats == step0Last)
        #expect(try #require(saved[6]).floats == zip(capture.steps[1], step0Last).map { $0 + $1 })
    }

    /// tracer.stop(): the last step's forward pass ends after the stop hook; no later hook fires
    /// (later modules do not run), and the step before it runs whole.
    @Test func theStopHookEndsTheForwardPass() throws {
        let config = try GPT2Config.load(directory: Oracle.model)
        let model = GPT2(weights: try GPT2Weights.load(directory: Oracle.model, config: config))
        let stop = HookPoint(.block(1), .output)
        let fragment = TraceGraph(nodes: [], invokes: [[5, 6, 7]], generation: GenerationSpec(maxNewTokens: 2, stopped: true), stopAfter: stop)
        let interpreter = try Interpreter(fragment: fragment, layers: config.nLayer, owns: { _ in true }) { _, _, _, _ in }
        final class Fired: HookHandler {
            let inner: Interpreter
            var points: [HookPoint] = []
            init(_ inner: Interpreter) { self.inner = inner }
            func wants(_ p: HookPoint) -> Bool { true }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                points.append(p)
                if inner.wants(p) { try inner.visit(p, v) }
            }
        }
        let fired = Fired(interpreter)
        let state = InferenceState(config: config, layers: config.nLayer, batch: 1, capacity: 4)
        interpreter.beginStep(0, imports: [:])
        _ = try model.forward(StepInput(tokens: [5, 6, 7]), state: state, hooks: fired)
        #expect(fired.points.last == HookPoint(.lmHead, .output))
        _ = interpreter.endStep()
        fired.points = []
        interpreter.beginStep(1, imports: [:])
        #expect(throws: Interpreter.Stopped.self) {
            _ = try model.forward(StepInput(tokens: [8], start: 3), state: state, hooks: fired)
        }
        #expect(fired.points.last == stop)
        #expect(!fired.points.contains(HookPoint(.block(2), .input)) && !fired.points.contains(HookPoint(.lmHead, .input)))
    }
}
