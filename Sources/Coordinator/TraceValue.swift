import Foundation
import Graph

/// One element of a tensor index: `x[0, -1]`, `x[.all, -1, .all]`, `x[.slice(1, nil)]`.
public enum TensorIndex: ExpressibleByIntegerLiteral, Sendable {
    case at(Int)
    case slice(Int?, Int?, step: Int? = nil)
    case ellipsis
    case newAxis

    /// `:` — the whole dim.
    public static let all = TensorIndex.slice(nil, nil)

    public init(integerLiteral value: Int) { self = .at(value) }

    public static func range(_ r: Range<Int>) -> TensorIndex { .slice(r.lowerBound, r.upperBound) }
    public static func from(_ start: Int) -> TensorIndex { .slice(start, nil) }
    public static func upTo(_ stop: Int) -> TensorIndex { .slice(nil, stop) }

    /// The interpreter's form of this index element.
    public var item: IndexItem {
        switch self {
        case let .at(i): .at(i)
        case let .slice(a, b, step): .slice(start: a, stop: b, step: step)
        case .ellipsis: .ellipsis
        case .newAxis: .newAxis
        }
    }
}

/// A value inside a trace (nnsight's proxy): reading it records a node; its real value exists only
/// on the worker that runs the node. `.save()` brings it back; a saved value used in a later trace
/// enters that trace as a constant.
///
/// ```swift
/// let token = model.lmHead.output[0, -1].argmax(dim: -1)
/// model.transformer.h[0].output[0][.all] = 0          // in-place edit
/// let saved = (model.transformer.h[-1].output[0] * 2).save()
/// ```
public final class TraceValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    let recorder: TraceRecorder?
    let nodeId: UInt32
    /// A Python or Swift number (or a tensor constant), embedded where it is used.
    public let literal: Tensor?
    /// A module output that is a tuple in Hugging Face (`h[i]`, `h[i].attn`): `[0]` picks an item.
    let isTuple: Bool
    /// What `.save()` returned for this value: a later trace uses its value as a constant.
    public internal(set) var saved: Saved?
    /// The name torch's autograd gives the op that made this value (`SliceBackward0`), nil
    /// when it needs no gradient: front ends print it as torch's repr does.
    public var gradFn: String?
    /// Whether the value is a permuted view (after permute, transpose or expand), which torch
    /// copies to reshape: front ends name the autograd op from it.
    public var isPermutedView = false

    init(recorder: TraceRecorder?, node: UInt32, isTuple: Bool) {
        self.recorder = recorder
        nodeId = node
        literal = nil
        self.isTuple = isTuple
    }

    init(literal: Tensor) {
        recorder = nil
        nodeId = 0
        self.literal = literal
        isTuple = false
    }

    public convenience init(integerLiteral value: Int) { self.init(literal: .scalar(Int64(value))) }
    public convenience init(floatLiteral value: Double) { self.init(literal: .scalar(Float(value))) }

    /// A float constant (Python's float).
    public static func constant(_ value: Double) -> TraceValue { TraceValue(literal: .scalar(Float(value))) }
    /// An integer constant (Python's int).
    public static func constant(_ value: Int) -> TraceValue { TraceValue(literal: .scalar(Int64(value))) }
    /// A tensor constant.
    public static func constant(_ value: Tensor) -> TraceValue { TraceValue(literal: value) }

    /// A value saved by an earlier trace: its value as a constant, or, inside the same session,
    /// the value itself on the coordinator.
    public static func saved(_ saved: Saved) -> TraceValue {
        let v = TraceValue(recorder: nil, node: 0, isTuple: false)
        v.saved = saved
        return v
    }

    /// The node holding this value in `trace`: its own node, or a constant for a literal or for
    /// the saved value of an earlier trace. Nil (and a problem recorded) when `trace` cannot use it.
    func node(in trace: TraceRecorder) -> UInt32? {
        if let literal { return trace.constant(literal) }
        if recorder === trace { return nodeId }
        if case let .success(value)? = saved?.result { return trace.constant(value) }
        // A value of an earlier trace of this session, used as it is (nnsight needs no .save()
        // there): that trace saves it for the coordinator.
        if saved == nil, let session = trace.session?.recording, !session.hasRun { saveInOwnTrace(session) }
        if let saved, let id = trace.external(saved) { return id }
        trace.problem(saved == nil
            ? "a value of another trace is used here: save it there (.save()) and use the saved value"
            : "a value saved by another trace is used here, but that trace did not produce it")
        return nil
    }

    private static var active: TraceRecorder? { TraceRecorder.active }

    /// Saves the value in the (finished) trace that made it, when that trace belongs to
    /// `session` and has not run: at the value's own step, invoke and guard.
    func saveInOwnTrace(_ session: SessionRecording) {
        guard literal == nil, !isTuple, let recorder, recorder.session?.recording === session else { return }
        saved = recorder.saveAfterRecording(self)
    }

    private func op(_ name: String, _ attributes: Attributes = Attributes()) -> TraceValue {
        guard let r = Self.active else { return self }
        guard let node = node(in: r) else { return TraceValue(recorder: r, node: 0, isTuple: false) }
        return r.op(name, [node], attributes)
    }

    public subscript(_ items: TensorIndex...) -> TraceValue {
        get { index(items) }
        set { assign(items, newValue) }
    }

    /// `self[items]` with the index as an array (the subscript takes a variadic list).
    public func index(_ items: [TensorIndex]) -> TraceValue {
        guard let r = Self.active else { return self }
        if isTuple {
            guard items.count == 1, case let .at(i) = items[0] else {
                r.problem("a tuple output takes one integer index, e.g. output[0]")
                return self
            }
            return op("tuple_item", Attributes(["item": .int(i)]))
        }
        return op("index", Attributes(["index": .index(items.map(\.item))]))
    }

    /// `x += v` where `x` is this value: torch's in-place op writes into the tensor `x` is. For
    /// a module's value (its `[0]`, or an index view of either) that edits the model, and true
    /// is returned; other values are temporaries, where rebinding the name is all the in-place
    /// op changes (false).
    public func assignInPlace(_ value: TraceValue) -> Bool {
        guard let r = Self.active, recorder === r, let source = value.node(in: r) else { return false }
        let assignable = { (id: UInt32) in NodeKind.assignableRead(id, kind: r.kind(of:)) != nil }
        switch r.kind(of: nodeId) {
        case .parameter?:
            r.add(.set(target: nodeId, index: [], value: source))  // refused: parameters are read-only
            return true
        case _ where !isTuple && assignable(nodeId):
            r.add(.set(target: nodeId, index: [], value: source))
            return true
        case let .op("index", inputs, attributes)? where inputs.count == 1 && assignable(inputs[0]):
            r.add(.set(target: inputs[0], index: attributes.index("index"), value: source))
            return true
        default:
            return false
        }
    }

    /// `self[items] = value`.
    public func assign(_ items: [TensorIndex], _ value: TraceValue) {
        guard let r = Self.active, var target = node(in: r), let source = value.node(in: r) else { return }
        if isTuple { target = r.op("tuple_item", [target], Attributes(["item": .int(0)])).nodeId }
        r.add(.set(target: target, index: items.map(\.item), value: source))
    }

    private static func reduction(_ dim: Int?, _ keepdim: Bool) -> Attributes {
        var a = Attributes(["keepdim": .bool(keepdim)])
        if let dim { a["dim"] = .int(dim) }
        return a
    }

    public func argmax(dim: Int? = nil, keepdim: Bool = false) -> TraceValue { op("argmax", Self.reduction(dim, keepdim)) }
    public func softmax(dim: Int) -> TraceValue { op("softmax", Attributes(["dim": .int(dim)])) }
    public func sum(dim: Int? = nil, keepdim: Bool = false) -> TraceValue { op("sum", Self.reduction(dim, keepdim)) }
    public func mean(dim: Int? = nil, keepdim: Bool = false) -> TraceValue { op("mean", Self.reduction(dim, keepdim)) }
    /// The largest value (along `dim`: its values, as `x.max(dim).values`).
    public func max(dim: Int? = nil, keepdim: Bool = false) -> TraceValue {
        let m = op("max", Self.reduction(dim, keepdim))
        return dim == nil ? m : m.op("tuple_item", Attributes(["item": .int(0)]))
    }
    public func abs() -> TraceValue { op("abs") }
    public func clone() -> TraceValue { op("clone") }

    /// Brings the value back when the trace has run.
    @discardableResult
    public func save() -> Saved {
        guard let r = Self.active else {
            let s = Saved(step: 0)
            s.result = .failure(.invalidGraph("save() outside a trace"))
            return s
        }
        let s = r.save(self)
        saved = s
        return s
    }

    static func binary(_ name: String, _ a: TraceValue, _ b: TraceValue) -> TraceValue {
        guard let r = TraceRecorder.active else { return a }
        guard let x = a.node(in: r), let y = b.node(in: r) else { return TraceValue(recorder: r, node: 0, isTuple: false) }
        return r.op(name, [x, y])
    }

    public static func + (a: TraceValue, b: TraceValue) -> TraceValue { binary("add", a, b) }
    public static func - (a: TraceValue, b: TraceValue) -> TraceValue { binary("sub", a, b) }
    public static func * (a: TraceValue, b: TraceValue) -> TraceValue { binary("mul", a, b) }
    public static func / (a: TraceValue, b: TraceValue) -> TraceValue { binary("div", a, b) }
    public static prefix func - (a: TraceValue) -> TraceValue { a.op("neg") }
    public static func + (a: TraceValue, b: Double) -> TraceValue { binary("add", a, .constant(b)) }
    public static func - (a: TraceValue, b: Double) -> TraceValue { binary("sub", a, .constant(b)) }
    public static func * (a: TraceValue, b: Double) -> TraceValue { binary("mul", a, .constant(b)) }
    public static func / (a: TraceValue, b: Double) -> TraceValue { binary("div", a, .constant(b)) }
    public static func * (a: Double, b: TraceValue) -> TraceValue { binary("mul", .constant(a), b) }
}
