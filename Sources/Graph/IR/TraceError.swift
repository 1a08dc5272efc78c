/// Why a trace could not compile or run: a kind, a message, and what it concerns (node, step,
/// module, script line:column, stage, worker). It travels on the wire as it is, so the script
/// runner and the Swift API read the fields, never the text.
///
/// ```swift
/// do { try model.generate(...) } catch let error as TraceError where error.kind == .invalidGraph {
///     print(error.line, error.column, error.message)
/// }
/// ```
public struct TraceError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable, Equatable {
        /// The trace cannot run as written: unknown module, bad index, shape mismatch, bad dataflow.
        case invalidGraph
        /// A value was read at a step that generation never reached (eos came first).
        case stepNotReached
        /// An op failed while the trace ran.
        case runtime
        /// The cluster could not carry the trace: a lost worker, a deadline, a bad message, a
        /// value that could not be delivered.
        case transport
        /// A value, a batch, a message or a computation over its budget: refused before anything
        /// was allocated (the message names the op, the shape and the limit).
        case overBudget
    }

    public var kind: Kind
    public var message: String
    /// The Python exception a script front end raises for it (nil: by `kind`); not on the wire.
    public var exception: PythonException?
    public var node: UInt32?
    public var step: Int?
    /// As nnsight prints it: "transformer.h[0].output".
    public var module: String?
    public var line: Int?
    public var column: Int?
    public var stage: Int?
    public var worker: String?

    public init(_ kind: Kind, _ message: String, node: UInt32? = nil, step: Int? = nil, module: String? = nil,
                line: Int? = nil, column: Int? = nil, stage: Int? = nil, worker: String? = nil) {
        self.kind = kind
        self.message = message
        self.node = node
        self.step = step
        self.module = module
        self.line = line
        self.column = column
        self.stage = stage
        self.worker = worker
    }

    public static func invalidGraph(_ message: String) -> TraceError { TraceError(.invalidGraph, message) }
    public static func runtime(_ message: String) -> TraceError { TraceError(.runtime, message) }
    public static func transport(_ message: String) -> TraceError { TraceError(.transport, message) }
    public static func overBudget(_ message: String) -> TraceError { TraceError(.overBudget, message) }
    public static func stepNotReached(step: Int) -> TraceError {
        TraceError(.stepNotReached, "step \(step) was not reached (generation stopped before it)", step: step)
    }

    /// The same error, located at `node` (fields already set are kept).
    public func at(_ node: GraphNode, step: Int? = nil, module: String? = nil) -> TraceError {
        var e = self
        e.node = e.node ?? node.id
        e.step = e.step ?? step ?? node.step
        e.module = e.module ?? module
        if e.line == nil, node.line > 0 {
            e.line = node.line
            e.column = node.column > 0 ? node.column : nil
        }
        return e
    }

    public var description: String {
        var context: [String] = []
        if let line { context.append("line \(line)" + (column.map { ":\($0)" } ?? "")) }
        if let node { context.append("node \(node)") }
        if let step, kind != .stepNotReached { context.append("at step \(step)") }
        if let module { context.append(module) }
        if let worker { context.append("worker \(worker)") } else if let stage { context.append("stage \(stage)") }
        let prefix = context.isEmpty ? "" : context.joined(separator: ", ") + ": "
        switch kind {
        case .invalidGraph: return "invalid trace: " + prefix + message
        case .stepNotReached: return message
        case .runtime: return "trace failed: " + prefix + message
        case .transport: return "cluster error: " + prefix + message
        case .overBudget: return "over budget: " + prefix + message
        }
    }
}

extension OpError {
    /// The op failure as a trace error of `kind` at `node`.
    public func trace(_ kind: TraceError.Kind, at node: GraphNode, step: Int? = nil, module: String? = nil) -> TraceError {
        TraceError(isOverBudget ? .overBudget : kind, description).at(node, step: step, module: module)
    }
}
