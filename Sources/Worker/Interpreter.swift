import Engine
import Foundation
import Wire

/// A graph value: a tensor, or a module's tuple output (`(hidden,)`, `(attn, None)`).
public enum GraphValue {
    case tensor(NDArray)
    case tuple([NDArray?])
}

/// An error inside a trace, naming the node, step and module.
public struct InterpreterError: Error, CustomStringConvertible {
    public let node: UInt32
    public let step: Int
    public let module: String
    public let message: String
    public let line: UInt32
    public var description: String {
        "node \(node)\(line > 0 ? " (line \(line))" : "") at step \(step)\(module.isEmpty ? "" : ", \(module)"): \(message)"
    }

    public var wire: Nnsight_V1_Error {
        .with {
            $0.code = .errorInvalidGraph
            $0.message = description
            $0.node = node
            $0.module = module
            $0.step = UInt32(step)
        }
    }
}

/// Runs one request's graph fragment on one stage: a table `(step, hook point) -> nodes`; at each
/// hook it reads or edits the live tensor, evaluates ops, and emits saves as soon as they exist.
/// Only the declarative ops of the schema run here: no user code.
public final class Interpreter: HookHandler {
    public typealias Emit = (_ saved: Nnsight_V1_SavedValue) -> Void

    private var table: [Int: [HookPoint: [Nnsight_V1_Node]]] = [:]
    private let nodesById: [UInt32: Nnsight_V1_Node]
    private var values: [UInt32: GraphValue] = [:]
    private let exports: [UInt32]  // sorted, once
    private let layers: Int
    private let emit: Emit
    public var step = 0
    /// Rows of the batch each invoke owns.
    private let invokeRows: [Int: Int]

    public init(fragment: Nnsight_V1_Graph, layers: Int, emit: @escaping Emit) throws(InterpreterError) {
        self.layers = layers
        self.emit = emit
        exports = Set(fragment.exports).sorted()
        var byId: [UInt32: Nnsight_V1_Node] = [:]
        var rows: [Int: Int] = [:]
        var row = 0
        for (i, invoke) in fragment.invokes.enumerated() where !invoke.tokenIds.isEmpty {
            rows[i] = row
            row += 1
        }
        invokeRows = rows
        for node in fragment.nodes {
            byId[node.id] = node
            guard let point = ModulePath.hookPoint(node.at, layers: layers) else {
                throw InterpreterError(node: node.id, step: Int(node.steps.first ?? 0), module: node.at.path,
                                       message: "no hook point '\(node.at.path)'", line: node.line)
            }
            for s in node.steps { table[Int(s), default: [:]][point, default: []].append(node) }
        }
        nodesById = byId
    }

    /// Values from other stages, available before this stage runs.
    public func importValues(_ cross: [Nnsight_V1_CrossValue]) throws(WireError) {
        for value in cross { values[value.node] = .tensor(NDArray(try HostTensor(value.value))) }
    }

    /// The values of `exports` that exist now, for the next stage or a later step.
    public func exportedValues() -> [Nnsight_V1_CrossValue] {
        exports.compactMap { id in
            guard case let .tensor(t)? = values[id] else { return nil }
            return .with { $0.node = id; $0.value = t.host.wire }
        }
    }

    public func wants(_ point: HookPoint) -> Bool { table[step]?[point] != nil }

    public func visit(_ point: HookPoint, _ value: HookValue) throws {
        guard let nodes = table[step]?[point] else { return }
        for node in nodes {
            do {
                try run(node, at: point, live: value)
            } catch let error as TensorError {
                throw InterpreterError(node: node.id, step: step, module: point.description,
                                       message: error.description, line: node.line)
            }
        }
    }

    // MARK: - evaluation

    private func rows(of node: Nnsight_V1_Node) -> Int? {
        node.invoke >= 0 ? invokeRows[Int(node.invoke)] : nil
    }

    /// The live tensor (or one invoke's row of it) as an array.
    private func read(_ live: HookValue, row: Int?) -> NDArray {
        var array: NDArray
        switch live {
        case let .floats(buffer, shape): array = NDArray(floats: UnsafeBufferPointer(buffer), shape: shape)
        case let .ids(buffer, shape): array = NDArray(shape: shape, dtype: .int64, data: buffer.map(Double.init))
        }
        if let row { array = (try? array.indexed([.slice(start: row, stop: row + 1, step: 1)])) ?? array }
        return array
    }

    private func tensor(_ id: UInt32) throws -> NDArray { try GraphOps.tensor(values[id], node: id) }

    private func run(_ node: Nnsight_V1_Node, at point: HookPoint, live: HookValue) throws {
        switch node.kind {
        case let .read(read)?:
            let array = self.read(live, row: rows(of: node))
            if read.port == .output, let size = ModulePath.outputTupleSize(point.module) {
                values[node.id] = .tuple([array] + [NDArray?](repeating: nil, count: size - 1))
            } else {
                values[node.id] = .tensor(array)
            }
        case let .op(op)?:
            values[node.id] = try evaluate(op)
        case let .set(setter)?:
            try assign(setter, node: node, live: live)
        case let .save(save)?:
            let value = try tensor(save.node)
            emit(.with { $0.saveID = save.saveID; $0.step = UInt32(step); $0.value = value.host.wire })
        case let .append(append)?:
            let value = try tensor(append.node)
            emit(.with { $0.saveID = append.listID; $0.step = UInt32(step); $0.value = value.host.wire; $0.append = true })
        case let .constant(constant)?:
            values[node.id] = .tensor(NDArray(try HostTensor(constant.value)))
        case nil:
            throw TensorError("node \(node.id) has no operation")
        }
    }

    private func evaluate(_ op: Nnsight_V1_Op) throws -> GraphValue {
        try GraphOps.evaluate(op) { id in values[id] }
    }

    /// Writes into the live hook tensor: the setter's target is a module read (or `[0]` of a
    /// tuple output) placed at this very hook.
    private func assign(_ setter: Nnsight_V1_Setter, node: Nnsight_V1_Node, live: HookValue) throws {
        var items = setter.index.map(IndexItem.init)
        let row = rows(of: node)
        // The user's index addresses the invoke's view [1, ...]: add the row offset on dim 0.
        var shape = live.shape
        var base = 0
        if let row {
            let rowSize = shape.dropFirst().reduce(1, *)
            base = row * rowSize
            shape[0] = 1
        }
        if items.isEmpty { items = [.ellipsis] }
        let (targetShape, offsets) = try NDArray.offsets(items, shape: shape)
        let source: NDArray
        switch setter.value {
        case let .scalar(s)?: source = try NDArray.scalar(s).broadcast(to: targetShape)
        case let .node(id)?: source = try tensor(id).broadcast(to: targetShape)
        case nil: throw TensorError("setter without a value")
        }
        switch live {
        case let .floats(buffer, _): for (i, o) in offsets.enumerated() { buffer[base + o] = Float(source.data[i]) }
        case let .ids(buffer, _): for (i, o) in offsets.enumerated() { buffer[base + o] = Int32(source.data[i]) }
        }
        // Reads recorded after this edit see it; reads before it keep their copies (id order).
    }
}

extension IndexItem {
    init(_ item: Nnsight_V1_IndexItem) {
        switch item.item {
        case let .at(i)?: self = .at(Int(i))
        case let .slice(s)?: self = .slice(start: s.hasStart ? Int(s.start) : nil, stop: s.hasStop ? Int(s.stop) : nil,
                                           step: s.hasStep ? Int(s.step) : nil)
        case .ellipsis?: self = .ellipsis
        case .newAxis?: self = .newAxis
        case nil: self = .all
        }
    }

    public var wire: Nnsight_V1_IndexItem {
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
