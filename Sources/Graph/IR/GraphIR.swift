import Engine

/// A port of a module that a node reads: `model.transformer.h[3].output`, `.input`, or one of
/// `model.transformer.inputs` (`key`).
public struct ModuleRead: Equatable, Sendable {
    public enum Port: Sendable, Equatable { case input, output, inputs }
    public var module: ModuleID
    public var port: Port
    /// The named input for `.inputs` ("input_ids", "attention_mask", "position_ids").
    public var key: String

    public init(_ module: ModuleID, _ port: Port, key: String = "") {
        self.module = module
        self.port = port
        self.key = key
    }

    /// The hook point where a worker reads it; nil for values that exist on the coordinator.
    public var hookPoint: HookPoint? {
        guard ModuleTree.spec(module).source == .hook else { return nil }
        switch port {
        case .input: return HookPoint(module, .input)
        case .output: return HookPoint(module, .output)
        case .inputs: return nil
        }
    }

    public var description: String {
        port == .inputs ? "\(module).inputs[\"\(key)\"]" : "\(module).\(port == .input ? "input" : "output")"
    }

    /// Why the module has no such port, nil when it has: hooked modules have an input and an
    /// output, the generator an output, `transformer` its named inputs. The one rule for the
    /// wire's decoder and the compiler.
    public var problem: String? {
        if ModuleTree.spec(module).source == .notCalled {
            let name = "model.\(ModuleTree.path(module)).\(port == .input ? "input" : "output")"
            return "'\(name)' was requested but the model already ran past it: the forward pass never calls \(module)"
                + (ModuleTree.spec(module).kind == .dropout(.attention) ? " (Hugging Face's sdpa attention applies its dropout inside the kernel)" : "")
        }
        let valid = switch (ModuleTree.spec(module).source, port) {
        case (.hook, .input), (.hook, .output), (.generator, .output), (.streamer, .output): true
        case (.modelInputs, .inputs): ModuleTree.modelInputKeys.contains(key)
        default: false
        }
        guard !valid else { return nil }
        return "\(module) has no " + (port == .inputs ? "input '\(key)'" : port == .input ? "input" : "output")
    }
}

/// What a node does.
public enum NodeKind: Sendable {
    case read(ModuleRead)
    /// A registry op (`OpRegistry.spec(name)`) on earlier nodes' values.
    case op(name: String, inputs: [UInt32], attributes: Attributes)
    /// In-place edit: `target[index] = value`, where `target` is a module read (or its `[0]`).
    case set(target: UInt32, index: [IndexItem], value: UInt32)
    /// `module.output = value`: the whole value replaced. The module gets a tensor of its own, so
    /// a tensor it shares (the residual stream under `ln_1.input`) keeps what it had.
    case replace(target: UInt32, value: UInt32)
    /// `module(x)`: a module's forward on a value, on the stage holding its weights.
    case call(module: ModuleID, input: UInt32)
    /// A module's parameter (`lm_head.weight`), read-only.
    case parameter(module: ModuleID, name: String)
    /// `module.skip(value)`: the module does not run at this step; its output is `value`.
    case skip(module: ModuleID, value: UInt32)
    /// Within a session: the value an earlier trace (`trace`, its index) saved under `saveID`.
    /// The coordinator makes it a constant before compiling.
    case external(trace: Int, saveID: UInt32)
    /// Streams `node`'s value back to the client under `saveID`.
    case save(node: UInt32, saveID: UInt32)
    /// Appends `node`'s value to the client's list `listID`.
    case append(node: UInt32, listID: UInt32)
    case constant(Tensor)

    /// The nodes whose values this one uses.
    public var inputs: [UInt32] {
        switch self {
        case .read, .constant, .parameter, .external: []
        case let .op(_, inputs, _): inputs
        case let .set(target, _, value), let .replace(target, value): [target, value]
        case let .save(node, _), let .append(node, _), let .call(_, node), let .skip(_, node): [node]
        }
    }

    public var isConstant: Bool {
        if case .constant = self { return true }
        return false
    }

    /// The module read a setter writes through `target`: the read itself, or the read under
    /// `tuple_item` (`h[i].output[0]`); nil when `target` is anything else. The one rule for the
    /// compiler and the worker's interpreter.
    public static func assignableRead(_ target: UInt32, kind: (UInt32) -> NodeKind?) -> UInt32? {
        var id = target
        for _ in 0..<64 {
            switch kind(id) {
            case .read?: return id
            case let .op(name, inputs, _)? where inputs.count == 1 && OpRegistry.spec(name)?.writableView == true:
                id = inputs[0]  // a view of a view of ... the read
            default: return nil
            }
        }
        return nil
    }

    /// Whether `target` is the module read itself or its `[0]` (a write goes to the live buffer
    /// directly), rather than a view computed from it.
    public static func isDirectRead(_ target: UInt32, kind: (UInt32) -> NodeKind?) -> Bool {
        switch kind(target) {
        case .read?: return true
        case let .op("tuple_item", inputs, _)?: if case .read? = inputs.first.flatMap(kind) { return true } else { return false }
        default: return false
        }
    }
}

/// One node of an intervention graph, tagged with the generation steps it runs at, the invoke
/// whose rows it sees (-1: the whole batch) and where in the script it was written.
public struct GraphNode: Sendable {
    public var id: UInt32
    public var steps: [Int]
    public var invoke: Int
    public var line: Int
    public var column: Int
    public var kind: NodeKind
    /// The hook point where it runs on a worker (set by the compiler).
    public var at: HookPoint?
    /// A guard (`if` on a traced value): the node runs only where this node's value (one
    /// element) is nonzero. A node whose guard or input was skipped is skipped too.
    public var condition: UInt32?

    public init(id: UInt32, steps: [Int], invoke: Int = -1, line: Int = 0, column: Int = 0, kind: NodeKind, at: HookPoint? = nil,
                condition: UInt32? = nil) {
        self.id = id
        self.steps = steps
        self.invoke = invoke
        self.line = line
        self.column = column
        self.kind = kind
        self.at = at
        self.condition = condition
    }

    public var step: Int { steps.first ?? 0 }

    /// The values this node needs before it can run: its inputs and its guard.
    public var dependencies: [UInt32] {
        guard let condition else { return kind.inputs }
        return kind.inputs + [condition]
    }
}

/// How the next token is chosen and when generation stops.
public struct GenerationSpec: Equatable, Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    public var eosTokenId: Int?
    public var padTokenId: Int
    /// `tracer.stop()` ended the trace at its last step: that step's forward pass ends after the
    /// last hook its nodes use (later modules do not run).
    public var stopped: Bool
    /// `model.trace`: lm_head runs at every position when the trace reads it. A generation
    /// (false) runs it at each row's last position only, as transformers' generate does
    /// (`logits_to_keep=1`): `lm_head.input` and `.output` are `[B, 1, ...]` at step 0 too.
    public var allPositionLogits: Bool

    public init(maxNewTokens: Int, sampling: SamplingParameters = SamplingParameters(), eosTokenId: Int? = nil, padTokenId: Int = 0,
                stopped: Bool = false, allPositionLogits: Bool = false) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
        self.stopped = stopped
        self.allPositionLogits = allPositionLogits
    }

    /// Whether generation goes on after step `step` (0-based): not at `maxNewTokens`, and not
    /// once every row has produced eos. The one stop rule, for the last stage (which starts each
    /// next step) and for the coordinator's record of the trace.
    public func continues(after step: Int, finished: [Bool]) -> Bool {
        step + 1 < maxNewTokens && !(eosTokenId != nil && finished.allSatisfy { $0 })
    }
}

/// Bounds a trace must stay within.
public struct GraphLimits: Equatable, Sendable {
    public var maxNodes: Int
    public var maxTensorBytes: Int
    public var maxSteps: Int
    /// Milliseconds since 1970; 0 for none.
    public var deadlineUnixMs: UInt64

    public init(maxNodes: Int = 0, maxTensorBytes: Int = 0, maxSteps: Int = 0, deadlineUnixMs: UInt64 = 0) {
        self.maxNodes = maxNodes
        self.maxTensorBytes = maxTensorBytes
        self.maxSteps = maxSteps
        self.deadlineUnixMs = deadlineUnixMs
    }
}

/// A recorded trace, or the fragment of a compiled one that a stage runs.
public struct TraceGraph: Sendable {
    public var nodes: [GraphNode]
    /// The batch's prompts (one row each), unpadded, in invoke order.
    public var invokes: [[Int]]
    /// How many rows each invoke holds (`tracer.invoke(["a", "b"])` holds two); empty: one each.
    /// A node's `invoke` indexes these.
    public var invokeSizes: [Int]
    public var generation: GenerationSpec
    public var limits: GraphLimits
    /// Nodes whose values this stage hands on to other stages.
    public var exports: [UInt32]
    /// The hook after which this stage ends the last step's forward pass (`tracer.stop()`; set
    /// by the compiler on the stage that owns it).
    public var stopAfter: HookPoint?

    public init(nodes: [GraphNode], invokes: [[Int]], invokeSizes: [Int] = [], generation: GenerationSpec, limits: GraphLimits = GraphLimits(),
                exports: [UInt32] = [], stopAfter: HookPoint? = nil) {
        self.nodes = nodes
        self.invokes = invokes
        self.invokeSizes = invokeSizes.allSatisfy { $0 == 1 } && invokeSizes.count == invokes.count ? [] : invokeSizes
        self.generation = generation
        self.limits = limits
        self.exports = exports
        self.stopAfter = stopAfter
    }
}

extension TraceGraph {
    /// The number of invokes (a node's `invoke` is below it).
    public var invokeCount: Int { invokeSizes.isEmpty ? invokes.count : invokeSizes.count }

    /// The batch rows of invoke `i`.
    public func rows(ofInvoke i: Int) -> Range<Int> {
        guard !invokeSizes.isEmpty else { return i..<(i + 1) }
        let start = invokeSizes[..<i].reduce(0, +)
        return start..<(start + invokeSizes[i])
    }

    /// Whether the invoke sizes cover the batch's rows exactly.
    public var invokeSizesFit: Bool { invokeSizes.isEmpty || (invokeSizes.allSatisfy { $0 >= 1 } && invokeSizes.reduce(0, +) == invokes.count) }
}

extension SamplingParameters {
    /// `validate()`, as a trace error.
    public func validateAsTrace() throws(TraceError) {
        do { try validate() } catch { throw TraceError(.invalidGraph, "\(error)") }
    }
}
