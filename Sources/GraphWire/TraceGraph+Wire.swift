import Engine
import Foundation
import Graph
import Wire

/// The intervention graph between the domain IR and the protobuf, at the edge: decoding checks
/// everything a sender controls (module paths, ports, ops, attributes, tensors) and answers a
/// typed error naming the node and its script position; it never traps.
extension TraceGraph {
    public init(wire graph: Nnsight_V1_Graph, layers: Int) throws(TraceError) {
        var nodes: [GraphNode] = []
        nodes.reserveCapacity(graph.nodes.count)
        for node in graph.nodes { nodes.append(try GraphNode(wire: node, layers: layers)) }
        let generation = graph.generation
        let s = generation.sampling
        self.init(
            nodes: nodes,
            invokes: graph.invokes.map { $0.tokenIds.map { Int(truncatingIfNeeded: $0) } },
            invokeSizes: graph.invokeSizes.map { Int($0) },
            generation: GenerationSpec(
                maxNewTokens: Int(generation.maxNewTokens),
                sampling: SamplingParameters(temperature: s.temperature, topK: Int(s.topK), topP: s.topP == 0 ? 1 : s.topP, seed: s.seed,
                                             repetitionPenalty: s.repetitionPenalty == 0 ? 1 : s.repetitionPenalty),
                eosTokenId: generation.hasEosTokenID ? Int(truncatingIfNeeded: generation.eosTokenID) : nil,
                padTokenId: Int(truncatingIfNeeded: generation.padTokenID), stopped: generation.stopped,
                allPositionLogits: generation.allPositionLogits),
            limits: GraphLimits(maxNodes: Int(graph.limits.maxNodes), maxTensorBytes: Int(clamping: graph.limits.maxTensorBytes),
                                maxSteps: Int(graph.limits.maxSteps), deadlineUnixMs: graph.limits.deadlineUnixMs),
            exports: graph.exports)
        if graph.hasStopAfter {
            guard let read = try? ModuleRead.resolve(graph.stopAfter, layers: layers).get(), let point = read.hookPoint else {
                throw TraceError(.invalidGraph, "stop_after names no hook point ('\(graph.stopAfter.path)')")
            }
            stopAfter = point
        }
    }

    public var wire: Nnsight_V1_Graph {
        .with { g in
            g.nodes = nodes.map(\.wire)
            g.invokes = invokes.map { prompt in .with { $0.tokenIds = prompt.map(Int64.init) } }
            g.invokeSizes = invokeSizes.map { UInt32(clamping: $0) }
            g.generation = .with {
                $0.maxNewTokens = UInt32(clamping: generation.maxNewTokens)
                $0.padTokenID = Int64(generation.padTokenId)
                if let eos = generation.eosTokenId { $0.eosTokenID = Int64(eos) }
                $0.stopped = generation.stopped
                $0.allPositionLogits = generation.allPositionLogits
                let s = generation.sampling
                $0.sampling = .with {
                    $0.temperature = s.temperature; $0.topK = UInt32(clamping: s.topK); $0.topP = s.topP; $0.seed = s.seed
                    $0.repetitionPenalty = s.repetitionPenalty
                }
            }
            if let stopAfter { g.stopAfter = ModuleRead(stopAfter.module, stopAfter.port == .input ? .input : .output).wire }
            g.limits = .with {
                $0.maxNodes = UInt32(clamping: limits.maxNodes)
                $0.maxTensorBytes = UInt64(clamping: limits.maxTensorBytes)
                $0.maxSteps = UInt32(clamping: limits.maxSteps)
                $0.deadlineUnixMs = limits.deadlineUnixMs
            }
            g.exports = exports
        }
    }
}

extension GraphNode {
    public init(wire node: Nnsight_V1_Node, layers: Int) throws(TraceError) {
        let line = Int(node.line), column = Int(node.column)
        func invalid(_ message: String) -> TraceError {
            TraceError(.invalidGraph, message, node: node.id, line: line > 0 ? line : nil, column: column > 0 ? column : nil)
        }
        func module(_ path: String) throws(TraceError) -> ModuleID {
            guard let id = ModuleTree.id(path: path, layers: layers) else { throw invalid("unknown module '\(path)'") }
            return id
        }
        let kind: NodeKind
        switch node.kind {
        case let .read(read)?: kind = .read(try ModuleRead.resolve(read, layers: layers).get(orThrow: invalid))
        case let .op(op)?:
            var attributes = Attributes()
            for attribute in op.attributes {
                guard attributes[attribute.name] == nil else { throw invalid("\(op.name): attribute '\(attribute.name)' is given twice") }
                guard let value = Attribute(wire: attribute) else { throw invalid("\(op.name): attribute '\(attribute.name)' has no value") }
                attributes[attribute.name] = value
            }
            guard let spec = OpRegistry.spec(op.name) else { throw invalid("unknown op '\(op.name)'") }
            do throws(OpError) { try spec.validate(inputs: op.inputs.count, attributes: attributes) } catch { throw invalid(error.description) }
            kind = .op(name: op.name, inputs: op.inputs, attributes: attributes)
        case let .set(setter)?:
            if setter.replace {
                guard setter.index.isEmpty else { throw invalid("a replacing setter has no index") }
                kind = .replace(target: setter.target, value: setter.value)
            } else {
                kind = .set(target: setter.target, index: setter.index.map(IndexItem.init(wire:)), value: setter.value)
            }
        case let .call(call)?: kind = .call(module: try module(call.path), input: call.input)
        case let .parameter(parameter)?:
            let module = try module(parameter.path)
            guard ModuleTree.parameterNames(of: module).contains(parameter.name) else {
                throw invalid("\(module) has no parameter '\(parameter.name)'")
            }
            kind = .parameter(module: module, name: parameter.name)
        case let .skip(skip)?: kind = .skip(module: try module(skip.path), value: skip.value)
        case let .sessionValue(value)?: kind = .external(trace: Int(value.trace), saveID: value.saveID)
        case let .save(save)?: kind = .save(node: save.node, saveID: save.saveID)
        case let .append(append)?: kind = .append(node: append.node, listID: append.listID)
        case let .constant(constant)?:
            do throws(WireError) { kind = .constant(try Tensor(wire: constant.value)) } catch { throw invalid("constant: \(error)") }
        case nil: throw invalid("node \(node.id) has no operation")
        }
        var at: HookPoint?
        if node.hasAt, !node.at.path.isEmpty {
            guard let read = try? ModuleRead.resolve(node.at, layers: layers).get(), let point = read.hookPoint else {
                throw invalid("no hook point '\(node.at.path)'")
            }
            at = point
        }
        self.init(id: node.id, steps: node.steps.map { Int($0) }, invoke: Int(node.invoke), line: line, column: column, kind: kind, at: at,
                  condition: node.condition == 0 ? nil : node.condition)
    }

    public var wire: Nnsight_V1_Node {
        .with { n in
            n.id = id
            n.steps = steps.map { UInt32(clamping: $0) }
            n.invoke = Int32(clamping: invoke)
            n.line = UInt32(clamping: line)
            n.column = UInt32(clamping: column)
            n.condition = condition ?? 0
            if let at { n.at = ModuleRead(at.module, at.port == .input ? .input : .output).wire }
            switch kind {
            case let .read(read): n.read = read.wire
            case let .op(name, inputs, attributes):
                n.op = .with { op in
                    op.name = name
                    op.inputs = inputs
                    op.attributes = attributes.values.keys.sorted().map { key in attributes.values[key]!.wire(name: key) }
                }
            case let .set(target, index, value):
                n.set = .with { $0.target = target; $0.index = index.map(\.wire); $0.value = value }
            case let .replace(target, value):
                n.set = .with { $0.target = target; $0.value = value; $0.replace = true }
            case let .call(module, input): n.call = .with { $0.path = ModuleTree.path(module); $0.input = input }
            case let .parameter(module, name): n.parameter = .with { $0.path = ModuleTree.path(module); $0.name = name }
            case let .skip(module, value): n.skip = .with { $0.path = ModuleTree.path(module); $0.value = value }
            case let .external(trace, saveID): n.sessionValue = .with { $0.trace = UInt32(clamping: trace); $0.saveID = saveID }
            case let .save(node, saveID): n.save = .with { $0.node = node; $0.saveID = saveID }
            case let .append(node, listID): n.append = .with { $0.node = node; $0.listID = listID }
            case let .constant(tensor): n.constant = .with { $0.value = tensor.wire }
            }
        }
    }
}

extension ModuleRead {
    /// The read at a wire path and port, or why there is none.
    public static func resolve(_ read: Nnsight_V1_ModuleRead, layers: Int) -> Result<ModuleRead, ModuleReadError> {
        guard let module = ModuleTree.id(path: read.path, layers: layers) else { return .failure(.unknownModule(read.path)) }
        let port: ModuleRead.Port
        switch read.port {
        case .input: port = .input
        case .output: port = .output
        case .inputs: port = .inputs
        default: return .failure(.noPort(read.path))
        }
        let resolved = ModuleRead(module, port, key: port == .inputs ? read.key : "")
        if let problem = resolved.problem { return .failure(.invalidPort(problem)) }
        return .success(resolved)
    }

    public var wire: Nnsight_V1_ModuleRead {
        .with {
            $0.path = ModuleTree.path(module)
            $0.port = switch port {
            case .input: .input
            case .output: .output
            case .inputs: .inputs
            }
            $0.key = key
        }
    }
}

public enum ModuleReadError: Error, CustomStringConvertible {
    case unknownModule(String)
    case noPort(String)
    case invalidPort(String)

    public var description: String {
        switch self {
        case let .unknownModule(path): "unknown module '\(path)'"
        case let .noPort(path): "a read of '\(path)' names no port"
        case let .invalidPort(problem): problem
        }
    }
}

extension Result where Failure == ModuleReadError {
    func get(orThrow wrap: (String) -> TraceError) throws(TraceError) -> Success {
        switch self {
        case let .success(v): return v
        case let .failure(e): throw wrap(e.description)
        }
    }
}

extension Attribute {
    init?(wire: Nnsight_V1_Attribute) {
        switch wire.value {
        case let .int(v)?: self = .int(Int(truncatingIfNeeded: v))
        case let .float(v)?: self = .float(v)
        case let .bool(v)?: self = .bool(v)
        case let .string(v)?: self = .string(v)
        case let .ints(v)?: self = .ints(v.values.map { Int(truncatingIfNeeded: $0) })
        case let .index(v)?: self = .index(v.items.map(IndexItem.init(wire:)))
        case nil: return nil
        }
    }

    func wire(name: String) -> Nnsight_V1_Attribute {
        .with { a in
            a.name = name
            switch self {
            case let .int(v): a.int = Int64(v)
            case let .float(v): a.float = v
            case let .bool(v): a.bool = v
            case let .string(v): a.string = v
            case let .ints(v): a.ints = .with { $0.values = v.map(Int64.init) }
            case let .index(v): a.index = .with { $0.items = v.map(\.wire) }
            }
        }
    }
}

extension IndexItem {
    init(wire item: Nnsight_V1_IndexItem) {
        func int(_ v: Int64) -> Int { Int(truncatingIfNeeded: v) }
        switch item.item {
        case let .at(i)?: self = .at(int(i))
        case let .slice(s)?: self = .slice(start: s.hasStart ? int(s.start) : nil, stop: s.hasStop ? int(s.stop) : nil,
                                           step: s.hasStep ? int(s.step) : nil)
        case .ellipsis?: self = .ellipsis
        case .newAxis?: self = .newAxis
        case nil: self = .all
        }
    }

    var wire: Nnsight_V1_IndexItem {
        switch self {
        case let .at(i): .with { $0.at = Int64(i) }
        case let .slice(start, stop, step): .with { item in
                item.slice = .with {
                    if let start { $0.start = Int64(start) }
                    if let stop { $0.stop = Int64(stop) }
                    if let step { $0.step = Int64(step) }
                }
            }
        case .ellipsis: .with { $0.ellipsis = true }
        case .newAxis: .with { $0.newAxis = true }
        }
    }
}
