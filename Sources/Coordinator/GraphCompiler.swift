import Engine
import Foundation
import Graph
import GraphWire
import Wire

/// A trace compiled for a pipeline: one graph fragment per stage, and the nodes the coordinator
/// evaluates itself once generation is done (those on `model.generator.output` or
/// `model.transformer.inputs`, and ops of constants only).
struct CompiledTrace: Sendable {
    var fragments: [TraceGraph]
    var clientNodes: [GraphNode]
    /// The static type of every value whose shape is known before the trace runs.
    var types: [UInt32: ValueType]
    /// Each stage's fragment as the body of its Submit message, encoded once (a big trace's
    /// encoding takes long: it is done where the trace compiles, off the serving loop, and a
    /// replay sends the same bytes). `TraceSession.submits` puts the trace id before it.
    var submitBodies: [Data] = []
}

/// Compiles a recorded trace in passes, each a function of the one before:
/// `validate` (every field a client controls) -> `classify` (worker, client or constant; ops of
/// constants folded) ->
/// `place` (the earliest hook where a node's inputs exist: forward order x steps) -> `inferTypes`
/// (static shapes and dtypes through the op registry) -> `partition` (the stage of every node, the
/// values that cross stages, constants replicated where used, the client's nodes split off).
/// Nothing a client sends makes it trap: every problem is a `TraceError` naming the node and its
/// script line:column.
struct GraphCompiler {
    let config: GPT2Config
    let stages: [Range<Int>]
    var budget = TraceBudget()

    enum Placement: Equatable { case constant, worker, client }

    /// (step, index in forward order): the order in which hooks fire during a generation.
    struct Position: Comparable {
        var step: Int
        var order: Int
        static func < (a: Position, b: Position) -> Bool { (a.step, a.order) < (b.step, b.order) }
    }

    /// What the passes know about a trace so far.
    struct Compilation {
        var graph: TraceGraph
        var index: [UInt32: Int] = [:]
        var placement: [UInt32: Placement] = [:]
        var position: [UInt32: Position] = [:]
        var hook: [UInt32: HookPoint] = [:]
        var types: [UInt32: ValueType] = [:]

        func node(_ id: UInt32) -> GraphNode { graph.nodes[index[id]!] }

        func describeParameter(_ id: UInt32) -> String {
            guard case let .parameter(module, name) = node(id).kind else { return "node \(id)" }
            return "model.\(module).\(name)"
        }

        func describe(_ id: UInt32) -> String {
            guard let p = hook[id], let pos = position[id] else { return "node \(id)" }
            return "\(p) at step \(pos.step)"
        }
    }

    func compile(_ graph: TraceGraph) throws(TraceError) -> CompiledTrace {
        var c = try validate(graph)
        try classify(&c)
        try place(&c)
        try inferTypes(&c)
        var compiled = partition(c)
        for fragment in compiled.fragments {
            do throws(WireError) {
                compiled.submitBodies.append(try Framing.encode(Framing.envelope { $0.submit = .with { $0.graph = fragment.wire } }))
            } catch {
                throw TraceError(.overBudget, "a stage's part of the trace cannot be sent: \(error)")
            }
        }
        return compiled
    }

    // MARK: - pass 1: validate

    func validate(_ graph: TraceGraph) throws(TraceError) -> Compilation {
        let g = graph.generation
        guard g.maxNewTokens >= 1 else { throw .invalidGraph("max_new_tokens must be at least 1") }
        if graph.limits.maxSteps > 0, g.maxNewTokens > graph.limits.maxSteps {
            throw .invalidGraph("max_new_tokens = \(g.maxNewTokens) is over the limit of \(graph.limits.maxSteps) steps")
        }
        guard !graph.invokes.isEmpty else { throw .invalidGraph("the trace has no prompt: pass one or call tracer.invoke(prompt)") }
        guard graph.invokeSizesFit else {
            throw .invalidGraph("invoke_sizes \(graph.invokeSizes) do not cover the \(graph.invokes.count) prompts (each invoke holds at least one)")
        }
        for (i, prompt) in graph.invokes.enumerated() {
            guard !prompt.isEmpty else { throw .invalidGraph("invoke \(i) has an empty prompt") }
            if let bad = prompt.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
                throw .invalidGraph("invoke \(i): token id \(bad) is outside the vocabulary of \(config.vocabSize)")
            }
        }
        let longest = graph.invokes.map(\.count).max()!
        guard longest <= config.nPositions, g.maxNewTokens <= config.nPositions - longest + 1 else {
            throw .invalidGraph("prompt of \(longest) tokens + \(g.maxNewTokens) new tokens exceeds n_positions = \(config.nPositions)")
        }
        try budget.checkShape(rows: graph.invokes.count, promptLength: longest, newTokens: g.maxNewTokens, config: config)
        try g.sampling.validateAsTrace()
        if let eos = g.eosTokenId, eos >= config.vocabSize { throw .invalidGraph("eos_token_id \(eos) is outside the vocabulary") }
        guard g.padTokenId >= 0, g.padTokenId < config.vocabSize else { throw .invalidGraph("pad_token_id \(g.padTokenId) is outside the vocabulary") }
        if graph.limits.maxNodes > 0, graph.nodes.count > graph.limits.maxNodes {
            throw .invalidGraph("the trace has \(graph.nodes.count) nodes, over the limit of \(graph.limits.maxNodes)")
        }

        var c = Compilation(graph: graph)
        for (i, node) in graph.nodes.enumerated() {
            func invalid(_ message: String) -> TraceError { TraceError(.invalidGraph, message).at(node) }
            guard c.index[node.id] == nil else { throw invalid("node id \(node.id) is used twice") }
            guard node.steps.count == 1 else { throw invalid("node \(node.id) must be recorded at exactly one step") }
            guard node.step >= 0, node.step < g.maxNewTokens else {
                throw invalid("step \(node.step) is beyond max_new_tokens = \(g.maxNewTokens) (steps 0..<\(g.maxNewTokens) run)")
            }
            guard node.invoke >= -1, node.invoke < graph.invokeCount else { throw invalid("node \(node.id) names invoke \(node.invoke), which does not exist") }
            for input in node.dependencies where c.index[input] == nil {
                throw invalid("node \(node.id) uses node \(input), which does not exist before it")
            }
            switch node.kind {
            case let .read(read):
                guard ModuleTree.id(path: ModuleTree.path(read.module), layers: config.nLayer) == read.module else {
                    throw invalid("unknown module '\(read.module)'")
                }
                if let problem = read.problem { throw invalid(problem) }
            case let .op(name, inputs, attributes):
                guard let spec = OpRegistry.spec(name) else { throw invalid("unknown op '\(name)'") }
                do throws(OpError) { try spec.validate(inputs: inputs.count, attributes: attributes) } catch { throw error.trace(.invalidGraph, at: node) }
            case let .constant(tensor):
                if graph.limits.maxTensorBytes > 0, tensor.count * 8 > graph.limits.maxTensorBytes {
                    throw invalid("a constant of shape \(tensor.shape) is over the limit of \(graph.limits.maxTensorBytes) bytes")
                }
            case let .call(module, _), let .skip(module, _):
                guard ModuleTree.id(path: ModuleTree.path(module), layers: config.nLayer) == module else { throw invalid("unknown module '\(module)'") }
                guard ModuleTree.spec(module).source == .hook else { throw invalid("\(module) is not a module of the forward pass: it cannot be called or skipped") }
                if case .skip = node.kind {
                    guard ModuleTree.isSkippable(module) else {
                        throw invalid("\(module).skip(): only a block (transformer.h[i]), its attn or its mlp can be skipped")
                    }
                    guard node.invoke < 0 || graph.rows(ofInvoke: node.invoke).count == graph.invokes.count else {
                        throw invalid("\(module).skip() inside one invoke of a batch of \(graph.invokes.count): a skipped module does not run for any row; skip outside the invokes")
                    }
                }
            case let .parameter(module, name):
                guard ModuleTree.id(path: ModuleTree.path(module), layers: config.nLayer) == module else { throw invalid("unknown module '\(module)'") }
                guard ModuleTree.parameterNames(of: module).contains(name) else { throw invalid("\(module) has no parameter '\(name)'") }
            case .external:
                throw invalid("node \(node.id) takes a value from an earlier trace of a session, but this trace was not submitted in one")
            case .set, .replace, .save, .append:
                break
            }
            c.index[node.id] = i
        }
        return c
    }

    // MARK: - pass 2: classify

    /// Worker nodes feed on the model's values; client nodes only on values the coordinator has
    /// (the generated ids, the model's inputs) or on constants.
    func classify(_ c: inout Compilation) throws(TraceError) {
        for node in c.graph.nodes {
            func invalid(_ message: String) -> TraceError { TraceError(.invalidGraph, message).at(node) }
            switch node.kind {
            case .constant:
                c.placement[node.id] = .constant
            case let .read(read):
                guard node.condition == nil else { throw invalid("node \(node.id): a module read cannot be guarded (reads have no effect; guard what uses them)") }
                c.placement[node.id] = read.hookPoint == nil ? .client : .worker
            case let .set(target, _, value), let .replace(target, value):
                if case .parameter? = c.index[target].map({ c.graph.nodes[$0].kind }) {
                    throw invalid("\(c.describeParameter(target)) is a parameter of the model: read-only (edit activations, not weights)")
                }
                guard let read = liveTarget(c, target), c.placement[read] == .worker else {
                    throw invalid("node \(node.id): only a module's output or input (or its [0]) can be assigned to")
                }
                guard c.placement[value] != .client, node.condition.map({ c.placement[$0] != .client }) ?? true else {
                    throw invalid("node \(node.id): model.generator.output and transformer.inputs exist only on the coordinator and cannot be written into the model")
                }
                c.placement[node.id] = .worker
            case .parameter:
                c.placement[node.id] = .worker
            case let .call(module, input), let .skip(module, input):
                guard c.placement[input] != .client, node.condition.map({ c.placement[$0] != .client }) ?? true else {
                    throw invalid("node \(node.id): \(module) runs on a worker, and model.generator.output and transformer.inputs exist only on the coordinator")
                }
                c.placement[node.id] = .worker
            case let .op(name, inputs, attributes) where inputs.allSatisfy({ c.placement[$0] == .constant }):
                // Constants only (`3.0 * vec` with a saved vec): folded here, with the registry's kernel.
                let args = inputs.map { input -> Value in
                    if case let .constant(t) = c.node(input).kind { return .tensor(t) }
                    return .tuple([])
                }
                let folded: Value
                do throws(OpError) { folded = try OpRegistry.spec(name)!.run(args, attributes, budget: budget.folding) } catch { throw error.trace(.invalidGraph, at: node) }
                guard case let .tensor(t) = folded else {
                    c.placement[node.id] = .client
                    continue
                }
                c.graph.nodes[c.index[node.id]!].kind = .constant(t.contiguous())
                c.placement[node.id] = .constant
            default:
                let inputs = node.dependencies.filter { c.placement[$0] != .constant }
                let worker = inputs.filter { c.placement[$0] == .worker }
                if worker.isEmpty {
                    c.placement[node.id] = .client
                } else if worker.count == inputs.count {
                    c.placement[node.id] = .worker
                } else {
                    throw invalid("node \(node.id) combines a model value (node \(worker[0])) with model.generator.output or transformer.inputs, which exist only on the coordinator")
                }
            }
        }
    }

    /// The module read a setter's target is (the read itself, or the read under `tuple_item`).
    func liveTarget(_ c: Compilation, _ target: UInt32) -> UInt32? {
        NodeKind.assignableRead(target) { id in c.index[id].map { c.graph.nodes[$0].kind } }
    }

    // MARK: - pass 3: place

    /// Whether `module` lies inside `ancestor` (a block's submodules, `attn.c_attn` in `attn`).
    static func isInside(_ module: ModuleID, _ ancestor: ModuleID) -> Bool {
        guard module != ancestor, module.layer >= 0, module.layer == ancestor.layer else { return false }
        let outer = ModuleTree.spec(ancestor).name, inner = ModuleTree.spec(module).name
        return outer.isEmpty || inner.hasPrefix(outer + ".")
    }

    /// A skipped module's submodules do not run at that step: nothing may read, edit or skip them.
    func checkSkips(_ c: Compilation) throws(TraceError) {
        var skipped: [Int: [(module: ModuleID, node: GraphNode)]] = [:]
        for node in c.graph.nodes { if case let .skip(module, _) = node.kind { skipped[node.step, default: []].append((module, node)) } }
        guard !skipped.isEmpty else { return }
        for node in c.graph.nodes {
            let module: ModuleID
            switch node.kind {
            case let .read(read) where read.hookPoint != nil: module = read.module
            case let .skip(m, _): module = m
            default: continue
            }
            guard let skip = skipped[node.step]?.first(where: { Self.isInside(module, $0.module) }) else { continue }
            let at = skip.node.line > 0 ? " (skipped at line \(skip.node.line):\(skip.node.column))" : ""
            throw TraceError(.invalidGraph, "\(module) does not run at step \(node.step): it is inside \(skip.module), which is skipped\(at)").at(node)
        }
    }

    func place(_ c: inout Compilation) throws(TraceError) {
        try checkSkips(c)
        let order = Dictionary(uniqueKeysWithValues: ModuleTree.hookOrder(layers: config.nLayer).enumerated().map { ($1, $0) })
        func hookIndex(_ point: HookPoint, _ node: GraphNode) throws(TraceError) -> Int {
            guard let index = order[point] else { throw TraceError(.invalidGraph, "\(point.module) has no hook point in the forward pass").at(node) }
            return index
        }
        for node in c.graph.nodes where c.placement[node.id] == .worker {
            switch node.kind {
            case let .read(read):
                guard let point = read.hookPoint, let index = order[point] else { throw TraceError(.invalidGraph, "unknown module '\(read.module)'").at(node) }
                c.hook[node.id] = point
                c.position[node.id] = Position(step: node.step, order: index)
            case let .parameter(module, _):
                // A parameter exists all along on its stage; its module's input hook is where.
                let point = HookPoint(module, .input)
                c.hook[node.id] = point
                c.position[node.id] = Position(step: node.step, order: try hookIndex(point, node))
            case let .call(module, _):
                // On the stage holding the weights: at the module's own input hook, or later
                // where the argument exists (on that same stage).
                let point = HookPoint(module, .input)
                let own = Position(step: node.step, order: try hookIndex(point, node))
                let latest = node.dependencies.filter { c.placement[$0] == .worker }.max { c.position[$0]! < c.position[$1]! }
                if let latest, let at = c.position[latest], at > own {
                    guard stage(of: c.hook[latest]!) == stage(of: point) else {
                        throw TraceError(.invalidGraph, "\(module)(...) runs on the stage holding its weights (stage \(stage(of: point))), but its argument comes from \(c.describe(latest)) on stage \(stage(of: c.hook[latest]!)), which runs after it in the step; on a single worker this works").at(node)
                    }
                    c.position[node.id] = at
                    c.hook[node.id] = c.hook[latest]
                } else {
                    c.position[node.id] = own
                    c.hook[node.id] = point
                }
            case let .skip(module, _):
                let point = HookPoint(module, .input)
                let target = Position(step: node.step, order: try hookIndex(point, node))
                for dependency in node.dependencies {
                    if let at = c.position[dependency], at > target {
                        throw TraceError(.invalidGraph, "\(c.describe(dependency)) is used before it can exist: \(module).skip() needs it before \(module) runs at step \(node.step)").at(node)
                    }
                }
                c.position[node.id] = target
                c.hook[node.id] = point
            case let .set(target, _, value), let .replace(target, value):
                // Edits run at their target's hook; the value must exist by then.
                let read = liveTarget(c, target)!
                let targetPosition = c.position[read]!
                if let valuePosition = c.position[value], valuePosition > targetPosition {
                    throw TraceError(.invalidGraph, "\(c.describe(value)) is used before it can exist: it is written into \(c.describe(read)), which runs earlier in the forward pass").at(node)
                }
                if let condition = node.condition, let conditionPosition = c.position[condition], conditionPosition > targetPosition {
                    // The edit would have to happen before its condition is known. As in nnsight,
                    // that is fine while the condition is false and an error when it holds.
                    let message = "\(c.describe(read)) was requested but the model already ran past it: this edit's condition (\(c.describe(condition))) is computed later in the forward pass"
                    c.graph.nodes[c.index[node.id]!].kind = .op(name: "fail_if", inputs: [condition], attributes: Attributes(["message": .string(message)]))
                    c.graph.nodes[c.index[node.id]!].condition = nil
                    c.position[node.id] = conditionPosition
                    c.hook[node.id] = c.hook[condition]
                    continue
                }
                c.position[node.id] = targetPosition
                c.hook[node.id] = c.hook[read]
            default:
                let latest = node.dependencies.filter { c.placement[$0] == .worker }.max { c.position[$0]! < c.position[$1]! }!
                c.position[node.id] = c.position[latest]
                c.hook[node.id] = c.hook[latest]
            }
        }
    }

    // MARK: - pass 4: static types

    /// Every value's shape and dtype before anything runs (prompt lengths are known): a shape that
    /// does not fit is an error here, with the node's line:column and module.
    func inferTypes(_ c: inout Compilation) throws(TraceError) {
        let batch = c.graph.invokes.count, promptLength = c.graph.invokes.map(\.count).max() ?? 0
        for node in c.graph.nodes {
            let rows = node.invoke >= 0 ? c.graph.rows(ofInvoke: node.invoke).count : batch
            let module = c.hook[node.id].map { "\($0)" }
            func fail(_ error: OpError) -> TraceError { error.trace(.invalidGraph, at: node, module: module) }
            if let condition = node.condition, let type = c.types[condition] {
                guard case let .tensor(t) = type, t.shape.reduce(1, *) == 1 else {
                    throw fail(OpError("Boolean value of Tensor with more than one value is ambiguous (the condition has type \(type))"))
                }
            }
            switch node.kind {
            case let .constant(t):
                c.types[node.id] = .tensor(t.type)
            case let .read(read):
                c.types[node.id] = StaticTypes.read(read, step: node.step, rows: rows, promptLength: promptLength,
                                                   allPositionLogits: c.graph.generation.allPositionLogits, config: config)
            case let .op(name, inputs, attributes):
                let types = inputs.compactMap { c.types[$0] }
                guard types.count == inputs.count, let spec = OpRegistry.spec(name) else { continue }
                do throws(OpError) { c.types[node.id] = try spec.type(types, attributes) } catch { throw fail(error) }
                let bytes = OpBudget.bytes(c.types[node.id]!)
                guard bytes <= budget.maxValueBytes else {
                    throw TraceError(.overBudget, "\(name) would make a value of \(c.types[node.id]!) (\(OpBudget.describe(bytes: bytes))), over the trace's limit of \(OpBudget.describe(bytes: budget.maxValueBytes)) per value (--max-value-mb)").at(node, module: module)
                }
            case let .set(target, index, value):
                guard case let .tensor(t)? = c.types[target], case let .tensor(v)? = c.types[value] else { continue }
                do throws(OpError) { try StaticTypes.checkAssignment(target: t.shape, index: index, value: v.shape) } catch { throw fail(error) }
            case let .replace(target, value):
                guard case let .tensor(t)? = c.types[target], case let .tensor(v)? = c.types[value] else { continue }
                do throws(OpError) { try StaticTypes.checkAssignment(target: t.shape, index: [], value: v.shape) } catch { throw fail(error) }
            case let .call(module, input):
                guard let type = c.types[input] else { continue }
                do throws(OpError) { c.types[node.id] = try StaticTypes.call(module, type, config: config) } catch { throw fail(error) }
            case let .parameter(module, name):
                c.types[node.id] = StaticTypes.parameter(module, name, config: config)
            case let .skip(module, value):
                guard let type = c.types[value] else { continue }
                let output = StaticTypes.read(ModuleRead(module, .output), step: node.step, rows: batch, promptLength: promptLength,
                                                   allPositionLogits: c.graph.generation.allPositionLogits, config: config)
                do throws(OpError) { try StaticTypes.checkSkip(module, output: output, value: type) } catch { throw fail(error) }
            case let .save(input, _), let .append(input, _):
                if case .tuple? = c.types[input] { throw fail(OpError("node \(input) is a tuple; index it first (e.g. output[0])")) }
            case .external:
                break  // refused by validate: a session fills these in first
            }
        }
    }

    // MARK: - pass 5: partition, replicate constants, split off the client's nodes

    func stage(of hook: HookPoint) -> Int {
        if let layer = hook.module.layerIndex { return stages.firstIndex { $0.contains(layer) } ?? stages.count - 1 }
        return hook.module.precedesLayers ? 0 : stages.count - 1
    }

    func partition(_ c: Compilation) -> CompiledTrace {
        let g = c.graph
        var fragments = stages.map { _ in TraceGraph(nodes: [], invokes: g.invokes, invokeSizes: g.invokeSizes, generation: g.generation, limits: g.limits) }
        var exports = [Set<UInt32>](repeating: [], count: stages.count)
        var constantsUsed = [Set<UInt32>](repeating: [], count: stages.count)
        var client: [GraphNode] = []
        var clientConstants = Set<UInt32>()
        for node in g.nodes {
            switch c.placement[node.id] {
            case .client?:
                client.append(node)
                clientConstants.formUnion(node.dependencies.filter { c.placement[$0] == .constant })
            case .worker?:
                let hook = c.hook[node.id]!, s = stage(of: hook)
                var placed = node
                placed.steps = [c.position[node.id]!.step]
                placed.at = hook
                fragments[s].nodes.append(placed)
                for input in node.dependencies {
                    if c.placement[input] == .constant {
                        constantsUsed[s].insert(input)
                    } else if let from = c.hook[input], stage(of: from) != s {
                        exports[stage(of: from)].insert(input)
                    }
                }
            default:
                continue
            }
        }
        for s in stages.indices {
            fragments[s].nodes = constantsUsed[s].sorted().map { c.node($0) } + fragments[s].nodes
            fragments[s].exports = exports[s].sorted()
        }
        if g.generation.stopped {
            // tracer.stop(): the last step ends after the last hook its nodes use (at once when none).
            let last = g.generation.maxNewTokens - 1
            let latest = g.nodes.filter { c.placement[$0.id] == .worker && c.position[$0.id]?.step == last }
                .max { c.position[$0.id]! < c.position[$1.id]! }
            let point = latest.flatMap { c.hook[$0.id] } ?? HookPoint(.wte, .input)
            fragments[stage(of: point)].stopAfter = point
        }
        let clientNodes = (clientConstants.map { c.node($0) } + client).sorted { $0.id < $1.id }
        return CompiledTrace(fragments: fragments, clientNodes: clientNodes, types: c.types)
    }
}
