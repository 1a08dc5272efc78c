import Engine
import Wire
import Worker

/// A trace compiled for a pipeline: one graph fragment per stage, and the nodes the coordinator
/// evaluates itself once generation is done (those that read `model.generator.output` or
/// `model.transformer.inputs`).
struct CompiledTrace {
    var fragments: [Nnsight_V1_Graph]
    var clientNodes: [Nnsight_V1_Node]
}

/// Validates a recorded trace, places every node at the earliest hook point where its inputs
/// exist (forward order x steps), assigns it to the stage owning that hook, and lists the
/// values that must cross stages.
struct GraphCompiler {
    let config: GPT2Config
    let stages: [Range<Int>]

    /// (step, index in forward order): the order in which hooks fire during a generation.
    struct Position: Comparable {
        var step: Int
        var order: Int
        static func < (a: Position, b: Position) -> Bool { (a.step, a.order) < (b.step, b.order) }
    }

    func compile(nodes: [Nnsight_V1_Node], invokes: [Nnsight_V1_Invoke], generation: Nnsight_V1_GenerationParameters,
                 limits: Nnsight_V1_Limits, problems: [String]) throws(TraceError) -> CompiledTrace {
        if let first = problems.first { throw .invalidGraph(first) }
        let order = HookPoint.forwardOrder(layers: config.nLayer)
        let orderIndex = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let maxSteps = Int(generation.maxNewTokens)
        guard limits.maxNodes == 0 || nodes.count <= Int(limits.maxNodes) else {
            throw .invalidGraph("the trace has \(nodes.count) nodes, over the limit of \(limits.maxNodes)")
        }

        var byId: [UInt32: Nnsight_V1_Node] = [:]
        var position: [UInt32: Position] = [:]
        var point: [UInt32: HookPoint] = [:]
        var client = Set<UInt32>()
        var constants = Set<UInt32>()

        func describe(_ id: UInt32) -> String {
            guard let p = point[id], let pos = position[id] else { return "node \(id)" }
            return "\(p) at step \(pos.step)"
        }
        func inputs(of node: Nnsight_V1_Node) -> [UInt32] {
            switch node.kind {
            case let .op(op)?: return op.inputs
            case let .set(s)?: if case let .node(v)? = s.value { return [s.target, v] } else { return [s.target] }
            case let .save(s)?: return [s.node]
            case let .append(a)?: return [a.node]
            default: return []
            }
        }

        for node in nodes {
            byId[node.id] = node
            let step = Int(node.steps.first ?? 0)
            guard step < maxSteps else {
                throw .invalidGraph("line \(node.line): step \(step) is beyond max_new_tokens = \(maxSteps) (steps 0..<\(maxSteps) run)")
            }
            switch node.kind {
            case let .read(read)?:
                if read.path == "generator" || read.path.hasPrefix("transformer.inputs.") {
                    client.insert(node.id)
                    continue
                }
                guard let hook = ModulePath.hookPoint(read, layers: config.nLayer), let index = orderIndex[hook] else {
                    throw .invalidGraph("unknown module '\(read.path)' (\(read.port))")
                }
                point[node.id] = hook
                position[node.id] = Position(step: step, order: index)
            case .constant?:
                constants.insert(node.id)
            case nil:
                throw .invalidGraph("node \(node.id) has no operation")
            default:
                let ins = inputs(of: node).filter { !constants.contains($0) }
                for i in ins where byId[i] == nil { throw .invalidGraph("node \(node.id) uses node \(i), which does not exist") }
                if ins.contains(where: client.contains) {
                    if let worker = ins.first(where: { !client.contains($0) && !constants.contains($0) }) {
                        throw .invalidGraph("node \(node.id) combines \(describe(worker)) with model.generator.output or transformer.inputs, which exist only on the coordinator")
                    }
                    client.insert(node.id)
                    continue
                }
                guard let latest = ins.max(by: { position[$0]! < position[$1]! }) else {
                    throw .invalidGraph("node \(node.id) has no module value among its inputs")
                }
                var pos = position[latest]!
                var hook = point[latest]!
                if case let .set(setter)? = node.kind {
                    // Edits run at their target's hook; the value must exist by then.
                    var target = setter.target
                    if case let .op(op)? = byId[target]?.kind, op.code == .opTupleItem { target = op.inputs.first ?? target }
                    guard case .read? = byId[target]?.kind, let targetPos = position[target] else {
                        throw .invalidGraph("node \(node.id): only a module's output or input (or its [0]) can be assigned to")
                    }
                    if case let .node(v)? = setter.value, let valuePos = position[v], valuePos > targetPos {
                        throw .invalidGraph("\(describe(v)) is used before it can exist: it is written into \(describe(target)), which runs earlier in the forward pass")
                    }
                    pos = targetPos
                    hook = point[target]!
                }
                position[node.id] = pos
                point[node.id] = hook
            }
        }

        // Stage of every worker node; values consumed on another stage, or at a later step, travel.
        func stage(_ hook: HookPoint) -> Int {
            if let l = hook.module.layer { return stages.firstIndex { $0.contains(l) }! }
            if hook.module == .wte || hook.module == .wpe { return 0 }
            return stages.count - 1
        }
        var fragments = (0..<stages.count).map { _ in
            Nnsight_V1_Graph.with {
                $0.invokes = invokes
                $0.generation = generation
                $0.limits = limits
            }
        }
        var exports = [Set<UInt32>](repeating: [], count: stages.count)
        var constantUses: [Int: [UInt32: (Position, HookPoint, Set<UInt32>)]] = [:]
        var clientNodes: [Nnsight_V1_Node] = []
        for node in nodes {
            if client.contains(node.id) {
                clientNodes.append(node)
                continue
            }
            guard let hook = point[node.id], let pos = position[node.id] else { continue }
            let s = stage(hook)
            var placed = node
            placed.steps = [UInt32(pos.step)]
            placed.at = .with { $0.path = ModulePath.path(hook.module); $0.port = hook.port == .input ? .input : .output }
            fragments[s].nodes.append(placed)
            for i in inputs(of: node) {
                if constants.contains(i) {
                    var use = constantUses[s, default: [:]][i] ?? (pos, hook, [])
                    if pos < use.0 { use.0 = pos; use.1 = hook }
                    use.2.insert(UInt32(pos.step))
                    constantUses[s, default: [:]][i] = use
                    continue
                }
                guard let from = point[i] else { continue }
                if stage(from) != s { exports[stage(from)].insert(i) }
            }
        }
        // Constants go to every stage that uses them, placed with their first use.
        for (s, uses) in constantUses {
            for (id, (_, hook, steps)) in uses {
                var node = byId[id]!
                node.steps = steps.sorted()
                node.at = .with { $0.path = ModulePath.path(hook.module); $0.port = hook.port == .input ? .input : .output }
                fragments[s].nodes.insert(node, at: 0)
            }
        }
        for s in 0..<stages.count {
            fragments[s].exports = exports[s].sorted()
            // Constants first, then trace order, so a node's inputs precede it at a shared hook.
            fragments[s].nodes.sort { a, b in
                let (ca, cb) = (constants.contains(a.id), constants.contains(b.id))
                return ca != cb ? ca : a.id < b.id
            }
        }
        // Client nodes that need worker values are unsupported (checked above); constants they use
        // are evaluated on the coordinator too.
        let clientIds = Set(clientNodes.map(\.id))
        let neededConstants = clientNodes.flatMap(inputs(of:)).filter { constants.contains($0) && !clientIds.contains($0) }
        clientNodes = (Set(neededConstants).sorted().map { byId[$0]! } + clientNodes).sorted { $0.id < $1.id }
        return CompiledTrace(fragments: fragments, clientNodes: clientNodes)
    }
}
