import Engine
import Graph

/// Runs one request's graph fragment on one stage: a table `(step, hook point) -> nodes`; at each
/// hook it reads (a view of the live buffer, copied only if the value outlives the hook or the
/// graph replaces the module's value), edits in place (views of the buffer see the edit, as torch's
/// aliasing tensors do), evaluates registry ops, and emits saves as
/// soon as they exist. Values are freed after their last use. Only declarative ops run: no user code.
///
/// ```swift
/// let interpreter = try Interpreter(fragment: graph, layers: 12, owns: { _ in true }) { id, step, value, append in ... }
/// interpreter.beginStep(0, imports: [:])
/// _ = try model.forward(input, state: state, hooks: interpreter)
/// let exports = interpreter.endStep()
/// ```
public final class Interpreter: HookHandler {
    /// Sends a saved (or appended) value on; nil when the save sits in a guarded branch that did
    /// not run (the coordinator counts it as arrived). A failure ends the trace.
    public typealias Emit = (_ id: UInt32, _ step: Int, _ value: Tensor?, _ append: Bool) throws -> Void

    private var table: [Int: [HookPoint: [Int]]] = [:]
    private var current: [HookPoint: [Int]] = [:]
    private let nodes: [GraphNode]
    private var values: [UInt32: Value] = [:]
    private var constants: [UInt32: Value] = [:]
    /// The run-order position of each value's last local use.
    private var lastUse: [UInt32: Int] = [:]
    private var sequence: [Int]  // node index -> run-order position
    /// The run-order position of each step's last node.
    private var stepEnd: [Int: Int] = [:]
    private let exports: [UInt32]
    private let exportSet: Set<UInt32>
    private var imported: [UInt32] = []
    private let emit: Emit
    /// What one op of this trace may make (checked before its kernel allocates).
    private let budget: OpBudget
    /// The batch rows of each invoke.
    private let invokeRows: [Int: Range<Int>]
    /// Nodes this stage runs (a value missing from elsewhere was skipped upstream).
    private let local: Set<UInt32>
    /// Per node: whether it has a guard or an input from another stage (only those can skip
    /// without a skipped input here), so the common node checks nothing.
    private let mayBeForeign: [Bool]
    /// Nodes a guard skipped, and the nodes that needed them.
    private var skipped: Set<UInt32> = []
    public private(set) var step = 0
    /// The stage's model: weights for module calls and parameter reads (nil in tests of pure graphs).
    private let model: GPT2?
    /// Per step, the hook points where a node replaces the value (the Engine hands a buffer of its own).
    private var replacing: [Int: Set<HookPoint>] = [:]
    /// Modules skipped this step, with the output their output hook receives.
    private var pendingSkips: [ModuleID: Tensor] = [:]
    /// Writes whose target is a view computed from the module's value (not the read itself).
    private var throughViews: Set<UInt32> = []
    /// Saves of values that view the live buffer, sent when the hook is done.
    private var liveSends: [(id: UInt32, value: Tensor, append: Bool)] = []
    /// `tracer.stop()`: the hook after which the last step's forward pass ends, and that step.
    private let stopAfter: HookPoint?
    /// `model.trace` rather than a generation (see `wantsAllLogits`).
    private let allPositionLogits: Bool
    private let lastStep: Int

    /// Thrown from the stop hook (`tracer.stop()`): the stage ends the step there and reports it stopped.
    public struct Stopped: Error {}

    /// - Parameters:
    ///   - layers: the model's layer count (the forward order the nodes run in).
    ///   - owns: whether a hook point fires on this stage (a node placed elsewhere would never
    ///     run, and its saves never arrive: refused up front).
    public init(fragment: TraceGraph, layers: Int, owns: (HookPoint) -> Bool, model: GPT2? = nil, budget: OpBudget = .unlimited,
                emit: @escaping Emit) throws(TraceError) {
        self.emit = emit
        self.budget = budget
        self.model = model
        stopAfter = fragment.stopAfter
        allPositionLogits = fragment.generation.allPositionLogits
        lastStep = fragment.generation.maxNewTokens - 1
        exports = Array(Set(fragment.exports)).sorted()
        exportSet = Set(exports)
        var rows: [Int: Range<Int>] = [:]
        for i in 0..<fragment.invokeCount { rows[i] = fragment.rows(ofInvoke: i) }
        invokeRows = rows
        let nodes = fragment.nodes
        self.nodes = nodes
        let order = Dictionary(uniqueKeysWithValues: ModuleTree.hookOrder(layers: layers).enumerated().map { ($1, $0) })
        var byId: [UInt32: Int] = [:]
        var runnable: [(key: (Int, Int, UInt32), index: Int)] = []
        let ids = Set(nodes.map(\.id))
        local = ids
        mayBeForeign = nodes.map { node in node.condition != nil || node.kind.inputs.contains { !ids.contains($0) } }
        for (i, node) in nodes.enumerated() {
            func invalid(_ message: String) -> TraceError { TraceError(.invalidGraph, message).at(node) }
            guard byId[node.id] == nil else { throw invalid("node id \(node.id) is used twice") }
            byId[node.id] = i
            if case let .constant(tensor) = node.kind {
                constants[node.id] = .tensor(tensor)
                continue
            }
            guard let point = node.at, owns(point), let position = order[point] else {
                throw invalid("node \(node.id) is placed at \(node.at.map { "\($0)" } ?? "no hook point"), which this stage does not run")
            }
            guard node.steps.count == 1, node.step >= 0 else { throw invalid("node \(node.id) must run at exactly one step") }
            if case let .set(target, _, _) = node.kind {
                let known = byId
                let kind = { (id: UInt32) in known[id].map { nodes[$0].kind } }
                guard let read = NodeKind.assignableRead(target, kind: kind), nodes[byId[read]!].at == point else {
                    throw invalid("node \(node.id): only a module's output or input (its [0], or a view of either) read at the same hook can be assigned to")
                }
                if !NodeKind.isDirectRead(target, kind: kind) { throughViews.insert(node.id) }
            }
            if case .replace = node.kind { replacing[node.step, default: []].insert(point) }
            if case let .skip(module, _) = node.kind {
                guard point == HookPoint(module, .input), ModuleTree.isSkippable(module) else {
                    throw invalid("node \(node.id): only a block, attn or mlp can be skipped, at its input hook")
                }
            }
            runnable.append(((node.step, position, node.id), i))
            table[node.step, default: [:]][point, default: []].append(i)
        }
        runnable.sort { $0.key < $1.key }
        sequence = [Int](repeating: -1, count: nodes.count)
        for (position, entry) in runnable.enumerated() {
            sequence[entry.index] = position
            stepEnd[entry.key.0] = position
        }
        for s in table.keys {
            for point in table[s]!.keys { table[s]![point]!.sort { sequence[$0] < sequence[$1] } }
        }
        for entry in runnable {
            for input in nodes[entry.index].dependencies where constants[input] == nil {
                lastUse[input] = max(lastUse[input] ?? -1, sequence[entry.index])
            }
        }
    }

    /// Starts `step` with the values other stages sent for it.
    public func beginStep(_ step: Int, imports: [UInt32: Tensor]) {
        self.step = step
        current = table[step] ?? [:]
        pendingSkips.removeAll()
        for (id, tensor) in imports where values[id] == nil {
            values[id] = .tensor(tensor)
            imported.append(id)
        }
    }

    /// Ends the step: the exported values that exist now (for the next stage or a later step);
    /// what no later node here needs is freed.
    public func endStep() -> [(UInt32, Tensor)] {
        var out: [(UInt32, Tensor)] = []
        for id in exports {
            if case let .tensor(t)? = values[id] { out.append((id, t)) }
        }
        for id in imported { values[id] = nil }
        imported.removeAll(keepingCapacity: true)
        let done = stepEnd[step] ?? -1
        for id in exports where (lastUse[id] ?? -1) <= done { values[id] = nil }
        return out
    }

    /// Values this request holds now (for tests of freeing).
    public var liveValueCount: Int { values.count }

    public func wants(_ point: HookPoint) -> Bool {
        current[point] != nil || (point.port == .output && !pendingSkips.isEmpty && pendingSkips[point.module] != nil)
            || (point == stopAfter && step == lastStep)
    }

    public func skips(_ module: ModuleID) -> Bool { pendingSkips[module] != nil }

    /// A generation's prompt pass runs lm_head at the last positions only, as transformers' does.
    public var wantsAllLogits: Bool {
        allPositionLogits && readsHead
    }

    public func replaces(_ point: HookPoint) -> Bool { replacing[step]?.contains(point) == true }

    public func visit(_ point: HookPoint, _ live: HookValue) throws {
        if point.port == .output, !pendingSkips.isEmpty, let output = pendingSkips.removeValue(forKey: point.module) {
            // The module did not run: its output is the skip's value.
            do throws(OpError) { try view(live, invoke: -1).indexed([.ellipsis]).write(output) } catch {
                var e = TraceError(.runtime, error.description)
                e.step = step
                e.module = point.description
                throw e
            }
        }
        var created: [UInt32] = []
        defer {
            keepBeyondHook(created)
            liveSends.removeAll()
        }
        for index in current[point] ?? [] {
            let node = nodes[index]
            do throws(OpError) {
                try run(node, index: index, at: point, live: live, created: &created)
            } catch {
                throw error.trace(.runtime, at: node, step: step, module: point.description)
            }
            release(inputsOf: node, at: sequence[index])
        }
        do throws(OpError) { try flushLiveSends() } catch {
            var e = TraceError(.runtime, error.description)
            e.step = step
            e.module = point.description
            throw e
        }
        if point == stopAfter && step == lastStep { throw Stopped() }
    }

    // MARK: - evaluation

    private func value(_ id: UInt32) throws(OpError) -> Value {
        if let v = values[id] ?? constants[id] { return v }
        throw OpError("the value of node \(id) is not available on this stage")
    }

    private func tensor(_ id: UInt32) throws(OpError) -> Tensor {
        guard case let .tensor(t) = try value(id) else { throw OpError("node \(id) is a tuple; index it first (e.g. output[0])") }
        return t
    }

    /// The live tensor, or the invoke's row of it.
    private func view(_ live: HookValue, invoke: Int) throws(OpError) -> Tensor {
        let base: Tensor = switch live {
        case let .floats(buffer, shape): .live(buffer, shape: shape)
        case let .ids(buffer, shape): .live(buffer, shape: shape)
        }
        guard invoke >= 0 else { return base }
        guard let rows = invokeRows[invoke], rows.upperBound <= base.shape.first ?? 0 else {
            throw OpError("invoke \(invoke) has no rows in this batch of \(base.shape.first ?? 0)")
        }
        return try base.indexed([.slice(start: rows.lowerBound, stop: rows.upperBound, step: 1)])
    }

    /// Whether a guard (or a skipped input) says this node does not run.
    private func skips(_ node: GraphNode, index: Int) throws(OpError) -> Bool {
        guard mayBeForeign[index] || !skipped.isEmpty else { return false }
        for input in node.dependencies where skipped.contains(input) || (values[input] == nil && constants[input] == nil && !local.contains(input)) {
            _ = input
            return true
        }
        guard let condition = node.condition else { return false }
        let c = try tensor(condition)
        guard c.count == 1 else { throw OpError("Boolean value of Tensor with more than one value is ambiguous") }
        return !c.bools[0]
    }

    private func run(_ node: GraphNode, index: Int, at point: HookPoint, live: HookValue, created: inout [UInt32]) throws(OpError) {
        if try skips(node, index: index) {
            skipped.insert(node.id)
            switch node.kind {
            case let .save(_, id): try send(id, nil, append: false)
            case let .append(_, id): try send(id, nil, append: true)
            default: break
            }
            return
        }
        switch node.kind {
        case .read:
            let view = try self.view(live, invoke: node.invoke)
            if point.port == .output, let size = ModuleTree.spec(point.module).outputTuple {
                values[node.id] = .tuple([view] + [Tensor?](repeating: nil, count: size - 1))
            } else {
                values[node.id] = .tensor(view)
            }
            created.append(node.id)
        case let .op(name, inputs, attributes):
            guard let spec = OpRegistry.spec(name) else { throw OpError("unknown op '\(name)'") }
            var args: [Value] = []
            args.reserveCapacity(inputs.count)
            for input in inputs { args.append(try value(input)) }
            values[node.id] = try spec.run(args, attributes, budget: budget)
            created.append(node.id)
        case let .set(target, index, value):
            // In place, as torch's `x[...] = v`: values that view this buffer (the read, its
            // slices) see the edit, as nnsight's aliasing tensors do; computed values do not.
            let source = try tensor(value).contiguous()
            let region = index.isEmpty ? [IndexItem.ellipsis] : index
            if !throughViews.contains(node.id) {
                try self.view(live, invoke: node.invoke).indexed(region).write(source)
            } else {
                // Through a view of the module's value (`x.view(B, T, H, D)[:, :, h] = 0`).
                let view = try tensor(target)
                guard view.isLive else {
                    throw OpError("node \(node.id): this view of the module's value is a copy (a reshape of a transposed tensor), so writing into it would not edit the model")
                }
                try view.indexed(region).write(source)
            }
        case let .replace(_, value):
            // `module.output = v` replaces the object: what was read before keeps the old tensor.
            let source = try tensor(value)
            keepBeyondHook(created)
            liveSends = liveSends.map { ($0.id, $0.value.contiguous(), $0.append) }
            try self.view(live, invoke: node.invoke).indexed([.ellipsis]).write(source)
        case let .call(module, input):
            values[node.id] = .tensor(try call(module, try tensor(input)))
        case let .parameter(module, name):
            guard let model, let parameter = model.parameter(module, name) else {
                throw OpError("\(module).\(name) is not held by this stage")
            }
            switch parameter {
            case let .live(buffer, shape):
                // The weights outlive the request and nothing writes them: a view, never copied.
                values[node.id] = .tensor(.live(UnsafeMutableBufferPointer(mutating: buffer), shape: shape))
            case let .copy(floats, shape):
                values[node.id] = .tensor(Tensor(shape: shape, floats: floats))
            }
        case let .skip(module, value):
            pendingSkips[module] = try tensor(value).contiguous()
        case .external:
            throw OpError("node \(node.id) is a session value the coordinator did not fill in")
        case let .save(input, saveID):
            try send(saveID, try tensor(input), append: false)
        case let .append(input, listID):
            try send(listID, try tensor(input), append: true)
        case .constant:
            break
        }
        if lastUse[node.id] == nil, !exportSet.contains(node.id) { values[node.id] = nil }
    }

    private func call(_ module: ModuleID, _ x: Tensor) throws(OpError) -> Tensor {
        guard let model else { throw OpError("\(module) cannot be called: this stage has no weights") }
        do {
            let y = switch x.dtype {
            case .float32: try x.floats.withUnsafeBufferPointer { try model.call(module, floats: $0, shape: x.shape) }
            case .int64, .bool: try model.call(module, ids: x.int64s.map { Int($0) }, shape: x.shape)
            }
            return Tensor(shape: y.shape, floats: y.values)
        } catch {
            throw OpError("\(error)")
        }
    }

    /// A value that views the live buffer goes when the hook is done (a later edit in the same
    /// hook shows in it, as in torch, where the saved tensor is the module's own).
    private func send(_ id: UInt32, _ value: Tensor?, append: Bool) throws(OpError) {
        if let value, value.isLive {
            liveSends.append((id, value, append))
            return
        }
        do { try emit(id, step, value, append) } catch { throw OpError("the saved value could not be sent: \(error)") }
    }

    /// Sends the saves that waited for the hook's end (copied off the live buffer first).
    private func flushLiveSends() throws(OpError) {
        guard !liveSends.isEmpty else { return }
        let waiting = liveSends
        liveSends.removeAll()
        for (id, value, append) in waiting {
            do { try emit(id, step, value.contiguous(), append) } catch { throw OpError("the saved value could not be sent: \(error)") }
        }
    }

    /// Frees inputs whose last use this was.
    private func release(inputsOf node: GraphNode, at position: Int) {
        for input in node.dependencies where lastUse[input] == position && !exportSet.contains(input) {
            values[input] = nil
        }
    }

    /// Copies the values that still view the live buffer (they outlive the hook, or it is about to
    /// be written).
    private func keepBeyondHook(_ ids: [UInt32]) {
        for id in ids {
            switch values[id] {
            case let .tensor(t)? where t.isLive: values[id] = .tensor(t.contiguous())
            case let .tuple(items)? where items.contains(where: { $0?.isLive == true }):
                values[id] = .tuple(items.map { $0.map { $0.isLive ? $0.contiguous() : $0 } })
            default: break
            }
        }
    }
}
