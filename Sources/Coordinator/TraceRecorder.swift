import Engine
import Foundation
import Graph

/// Records a trace into graph nodes while the user's closure runs: every module access, tensor
/// op, edit and save becomes a node tagged with the current generation step, invoke and source
/// position.
final class TraceRecorder {
    let config: GPT2Config
    let maxNewTokens: Int
    var layers: Int { config.nLayer }
    var nodes: [GraphNode] = []
    /// Every value's static type, known as it is recorded (`.shape` is a plain value).
    var types: [UInt32: ValueType] = [:]
    /// The guard of the branch being recorded (`if` on a traced value): nodes with effects
    /// (edits, saves, appends, ops) carry it.
    var condition: UInt32?
    /// The prompt length that shapes read so far assumed (a later, longer invoke changes it).
    var shapesAssumedLength: (length: Int, line: Int, column: Int)?
    /// How many of `invokes` each invoke holds, in order.
    var invokeSizes: [Int] = []
    var invokes: [[Int]] = []
    /// The step that module accesses refer to outside loops (`tracer.next()` advances it).
    var cursor = 0
    /// The step of the loop iteration running now, if any.
    var loopStep: Int?
    var currentInvoke = -1
    /// The source position being recorded (trace scripts set it), for error messages.
    var currentLine = 0
    var currentColumn = 0
    var currentStep: Int { loopStep ?? cursor }
    /// The step where `tracer.stop()` ended the trace: no later step runs.
    var stopStep: Int?
    /// `tracer.stop()` decided on the client from values that arrived: what the trace recorded
    /// after it (node ids from `node` on) or for a later step is not delivered.
    var clientStop: (step: Int, node: UInt32)?
    /// Nodes recorded so far that change the model's computation (writes, replacements, skips).
    private(set) var editCount = 0

    /// Whether a value (its node id and step) comes after a client-side `tracer.stop()`: later in
    /// program order, or at a step that never ran.
    func isAfterClientStop(id: UInt32, step: Int) -> Bool {
        guard let stop = clientStop else { return false }
        return step > stop.step || id >= stop.node
    }
    /// The session this trace is recorded in, and its index there.
    var session: (recording: SessionRecording, index: Int)?

    /// Saves and list appends, by the id their values stream back under.
    var saves: [UInt32: Saved] = [:]
    var appends: [UInt32: (list: SavedList, node: UInt32)] = [:]
    /// Problems found while recording (bad module paths, values of other traces), reported when
    /// the trace compiles.
    var problems: [TraceError] = []
    /// The id the next node gets (node ids follow record order).
    private(set) var nextId: UInt32 = 1

    /// `model.trace` (lm_head at every position) rather than a generation (the last only).
    let allPositionLogits: Bool

    init(config: GPT2Config, maxNewTokens: Int, allPositionLogits: Bool = false) {
        self.config = config
        self.maxNewTokens = maxNewTokens
        self.allPositionLogits = allPositionLogits
    }

    /// Prompt lengths a front end found before recording (its invokes' literal prompts), so
    /// shapes read in an early invoke already see the batch's padded length.
    var plannedLengths: [Int] = []

    var promptLength: Int { (invokes.map(\.count) + plannedLengths).max() ?? 0 }

    func problem(_ message: String, exception: PythonException? = nil) {
        var error = TraceError(.invalidGraph, message, line: currentLine > 0 ? currentLine : nil,
                               column: currentColumn > 0 ? currentColumn : nil)
        error.exception = exception
        problems.append(error)
    }

    @discardableResult
    func add(_ kind: NodeKind) -> UInt32 {
        let id = nextId
        nextId += 1
        var guarded: UInt32? = nil
        if case .read = kind {} else if case .constant = kind {} else { guarded = condition }
        let node = GraphNode(id: id, steps: [currentStep], invoke: currentInvoke, line: currentLine, column: currentColumn, kind: kind,
                             condition: guarded)
        position[id] = nodes.count
        nodes.append(node)
        switch kind {
        case .set, .replace, .skip: editCount += 1
        default: break
        }
        inferType(node)
        return id
    }

    /// Where each node sits in `nodes`.
    private var position: [UInt32: Int] = [:]

    func kind(of id: UInt32) -> NodeKind? { position[id].map { nodes[$0].kind } }

    /// The node's static type through the op registry; a rule that fails is a problem at the
    /// node's line:column (the compiler checks the same again on what it receives).
    private func inferType(_ node: GraphNode) {
        switch node.kind {
        case let .constant(t):
            types[node.id] = .tensor(t.type)
        case let .read(read):
            types[node.id] = StaticTypes.read(read, step: node.step, rows: rows(node), promptLength: promptLength, allPositionLogits: allPositionLogits, config: config)
        case let .op(name, inputs, attributes):
            let known = inputs.compactMap { types[$0] }
            guard known.count == inputs.count, let spec = OpRegistry.spec(name) else { return }
            do throws(OpError) { types[node.id] = try spec.type(known, attributes) } catch { problem(origin(inputs) + error.description, exception: error.exception) }
        case let .set(target, index, value):
            if case .parameter? = kind(of: target) { problem("a parameter of the model is read-only (edit activations, not weights)") }
            guard case let .tensor(t)? = types[target], case let .tensor(v)? = types[value] else { return }
            do throws(OpError) { try StaticTypes.checkAssignment(target: t.shape, index: index, value: v.shape) } catch { problem(origin([target]) + error.description, exception: error.exception) }
        case let .replace(target, value):
            guard case let .tensor(t)? = types[target], case let .tensor(v)? = types[value] else { return }
            do throws(OpError) { try StaticTypes.checkAssignment(target: t.shape, index: [], value: v.shape) } catch { problem(origin([target]) + error.description, exception: error.exception) }
        case let .call(module, input):
            guard let type = types[input] else { return }
            do throws(OpError) { types[node.id] = try StaticTypes.call(module, type, config: config) } catch { problem(origin([input]) + error.description) }
        case let .parameter(module, name):
            types[node.id] = StaticTypes.parameter(module, name, config: config)
        case let .skip(module, value):
            guard let type = types[value] else { return }
            let output = StaticTypes.read(ModuleRead(module, .output), step: node.step, rows: rows(node), promptLength: promptLength, allPositionLogits: allPositionLogits, config: config)
            do throws(OpError) { try StaticTypes.checkSkip(module, output: output, value: type) } catch { problem(error.description) }
        case .save, .append, .external:
            break  // an external's type comes from the trace that saved it (`external(_:)`)
        }
    }

    /// The batch rows a node sees: its invoke's one, or the whole (planned) batch.
    private func rows(_ node: GraphNode) -> Int {
        node.invoke >= 0 ? invokeSizes[node.invoke] : max(invokes.count, plannedLengths.count, 1)
    }

    /// "transformer.h[0].output at step 0: ", the module value an op's inputs come from (for messages).
    private func origin(_ inputs: [UInt32]) -> String {
        var id = inputs.first
        let byId = Dictionary(nodes.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        while let current = id, let node = byId[current] {
            switch node.kind {
            case let .read(read):
                let place = read.hookPoint.map { "\($0)" } ?? "\(read)"
                return "\(place) at step \(node.step): "
            case let .op(_, inputs, _): id = inputs.first
            default: return ""
            }
        }
        return ""
    }

    /// The static type of `node`, noting the prompt length it assumes.
    func staticType(_ node: UInt32) -> ValueType? {
        if shapesAssumedLength == nil, !invokes.isEmpty { shapesAssumedLength = (promptLength, currentLine, currentColumn) }
        return types[node]
    }

    func read(_ read: ModuleRead) -> TraceValue {
        if let message = read.problem { problem(message) }
        return TraceValue(recorder: self, node: add(.read(read)), isTuple: read.port == .output && ModuleTree.spec(read.module).outputTuple != nil)
    }

    /// The node of a value as a tensor: item 0 of a tuple output (`h[0].output` stands for its
    /// hidden states where a tensor is expected, as Hugging Face's tuples are used).
    func item0(of value: TraceValue) -> UInt32? {
        guard let node = value.node(in: self) else { return nil }
        guard value.isTuple || { if case .tuple? = types[node] { return true }; return false }() else { return node }
        return add(.op(name: "tuple_item", inputs: [node], attributes: Attributes(["item": .int(0)])))
    }

    func op(_ name: String, _ inputs: [UInt32], _ attributes: Attributes = Attributes()) -> TraceValue {
        let id = add(.op(name: name, inputs: inputs, attributes: attributes))
        if case .tuple? = types[id] { return TraceValue(recorder: self, node: id, isTuple: true) }
        return TraceValue(recorder: self, node: id, isTuple: false)
    }

    /// A condition's value as one bool (`bool(x)` of a one-element tensor), checked statically.
    func truth(_ node: UInt32) -> UInt32 {
        switch types[node] {
        case let .tensor(t)? where t.shape.reduce(1, *) != 1:
            problem("Boolean value of Tensor with more than one value is ambiguous (the condition has shape \(t.shape))")
        case .tuple?:
            problem("a tuple cannot be a condition; index it first (e.g. output[0])")
        default: break
        }
        if case let .tensor(t)? = types[node], t.dtype == .bool, t.shape.isEmpty { return node }
        let zero = constant(.scalar(Int64(0)))
        let ne = add(.op(name: "ne", inputs: [node, zero], attributes: Attributes()))
        // A 0-d bool, whatever the condition's one-element shape.
        return add(.op(name: "reshape", inputs: [ne], attributes: Attributes(["shape": .ints([])])))
    }

    /// Runs `body` with nodes guarded by `condition` (a bool node) and the enclosing guard.
    func guarded<T>(by condition: UInt32?, _ body: () throws -> T) rethrows -> T {
        let outer = self.condition
        if let condition, let outer {
            self.condition = add(.op(name: "bitwise_and", inputs: [outer, condition], attributes: Attributes()))
        } else {
            self.condition = condition ?? outer
        }
        defer { self.condition = outer }
        return try body()
    }

    /// `not condition` (for `else` and the branches after one that was taken).
    func negation(_ condition: UInt32) -> UInt32 {
        add(.op(name: "bitwise_not", inputs: [condition], attributes: Attributes()))
    }

    func constant(_ tensor: Tensor) -> UInt32 { add(.constant(tensor)) }

    /// A value an earlier trace of this session saves, typed as it was saved.
    func external(_ saved: Saved) -> UInt32? {
        guard let origin = saved.origin, let session, let recording = origin.session, recording === session.recording,
              origin.trace < session.index else { return nil }
        let id = add(.external(trace: origin.trace, saveID: origin.saveID))
        types[id] = saved.type
        return id
    }

    /// `save(value)` once the trace's body has ended: at the step, invoke and guard of the node
    /// that makes the value (and its script position).
    func saveAfterRecording(_ value: TraceValue) -> Saved {
        let before = (loopStep, currentInvoke, condition, currentLine, currentColumn)
        defer { (loopStep, currentInvoke, condition, currentLine, currentColumn) = before }
        if let i = position[value.nodeId] {
            let node = nodes[i]
            (loopStep, currentInvoke, currentLine, currentColumn) = (node.step, node.invoke, node.line, node.column)
            condition = node.condition
        }
        return save(value)
    }

    func save(_ value: TraceValue) -> Saved {
        let saved = Saved(step: currentStep)
        guard let node = value.node(in: self) else {
            saved.result = .failure(problems.last ?? .invalidGraph("save() of a value this trace cannot use"))
            return saved
        }
        let id = nextId
        add(.save(node: node, saveID: id))
        saves[id] = saved
        saved.type = types[node]
        if let session { saved.origin = SessionOrigin(session: session.recording, trace: session.index, saveID: id) }
        return saved
    }

    func append(_ value: TraceValue, to list: SavedList) {
        guard let node = value.node(in: self) else { return }
        let id = nextId
        add(.append(node: node, listID: id))
        appends[id] = (list, id)
        list.expect(slot: id, step: currentStep)
    }
}

extension TraceRecorder {
    private static let key = "nnsight.TraceRecorder.active"

    /// The recorder of the trace being recorded on this thread (module envoys and literals need
    /// one to become nodes). Thread-local, so models tracing on different threads do not mix.
    static var active: TraceRecorder? {
        get { Thread.current.threadDictionary[key] as? TraceRecorder }
        set { Thread.current.threadDictionary[key] = newValue }
    }
}
