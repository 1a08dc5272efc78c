import Foundation
import Wire
import Worker

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
/// on the worker that runs the node. `.save()` brings it back.
///
/// ```swift
/// let token = model.lmHead.output[0, -1].argmax(dim: -1)
/// model.transformer.h[0].output[0][.all] = 0          // in-place edit
/// let saved = (model.transformer.h[-1].output[0] * 2).save()
/// ```
public final class TraceValue: ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    let recorder: TraceRecorder?
    let nodeId: UInt32
    let scalar: Double?
    /// A module output that is a tuple in Hugging Face (`h[i]`, `h[i].attn`): `[0]` picks an item.
    let isTuple: Bool

    init(recorder: TraceRecorder?, node: UInt32, isTuple: Bool) {
        self.recorder = recorder
        nodeId = node
        scalar = nil
        self.isTuple = isTuple
    }

    public init(integerLiteral value: Int) {
        recorder = nil
        nodeId = 0
        scalar = Double(value)
        isTuple = false
    }

    public init(floatLiteral value: Double) {
        recorder = nil
        nodeId = 0
        scalar = value
        isTuple = false
    }

    public static func constant(_ value: Double) -> TraceValue { TraceValue(floatLiteral: value) }

    /// The node holding this value (recording a constant for a literal).
    func materialize() -> UInt32 {
        if let scalar, let recorder = recorder ?? TraceRecorder.active { return recorder.constant(scalar) }
        return nodeId
    }

    private var active: TraceRecorder? { recorder ?? TraceRecorder.active }

    private func op(_ code: Nnsight_V1_OpCode, _ fill: (inout Nnsight_V1_Op) -> Void = { _ in }) -> TraceValue {
        guard let r = active else { return self }
        return r.op(code, [materialize()], fill)
    }

    public subscript(_ items: TensorIndex...) -> TraceValue {
        get { index(items) }
        set { assign(items, newValue) }
    }

    /// `self[items]` with the index as an array (the subscript takes a variadic list).
    public func index(_ items: [TensorIndex]) -> TraceValue {
        guard let r = active else { return self }
        if isTuple {
            guard items.count == 1, case let .at(i) = items[0] else {
                r.problems.append("a tuple output takes one integer index, e.g. output[0]")
                return self
            }
            return r.op(.opTupleItem, [nodeId]) { $0.dim = Int64(i) }
        }
        return r.op(.opIndex, [nodeId]) { $0.index = items.map { $0.item.wire } }
    }

    /// `self[items] = value`.
    public func assign(_ items: [TensorIndex], _ value: TraceValue) {
        guard let r = active else { return }
        let target = isTuple ? r.op(.opTupleItem, [nodeId]) { $0.dim = 0 }.nodeId : nodeId
        r.add { node in
            node.set = .with {
                $0.target = target
                $0.index = items.map { $0.item.wire }
                if let s = value.scalar { $0.scalar = s } else { $0.node = value.nodeId }
            }
        }
    }

    public func argmax(dim: Int? = nil, keepdim: Bool = false) -> TraceValue {
        op(.opArgmax) { if let dim { $0.dim = Int64(dim) }; $0.keepdim = keepdim }
    }
    public func softmax(dim: Int) -> TraceValue { op(.opSoftmax) { $0.dim = Int64(dim) } }
    public func sum(dim: Int? = nil, keepdim: Bool = false) -> TraceValue {
        op(.opSum) { if let dim { $0.dim = Int64(dim) }; $0.keepdim = keepdim }
    }
    public func mean(dim: Int? = nil, keepdim: Bool = false) -> TraceValue {
        op(.opMean) { if let dim { $0.dim = Int64(dim) }; $0.keepdim = keepdim }
    }
    public func max(dim: Int? = nil, keepdim: Bool = false) -> TraceValue {
        op(.opMax) { if let dim { $0.dim = Int64(dim) }; $0.keepdim = keepdim }
    }
    public func abs() -> TraceValue { op(.opAbs) }
    public func clone() -> TraceValue { op(.opClone) }

    /// Brings the value back when the trace has run.
    @discardableResult
    public func save() -> Saved {
        guard let r = active else {
            let s = Saved(step: 0)
            s.result = .failure(.invalidGraph("save() outside a trace"))
            return s
        }
        return r.save(self)
    }

    static func binary(_ code: Nnsight_V1_OpCode, _ a: TraceValue, _ b: TraceValue) -> TraceValue {
        guard let r = a.active ?? b.active else { return a }
        if let s = b.scalar { return r.op(code, [a.materialize()]) { $0.scalar = s } }
        if let s = a.scalar { return r.op(code, [b.materialize()]) { $0.scalar = s; $0.scalarOnLeft = true } }
        return r.op(code, [a.nodeId, b.nodeId])
    }

    public static func + (a: TraceValue, b: TraceValue) -> TraceValue { binary(.opAdd, a, b) }
    public static func - (a: TraceValue, b: TraceValue) -> TraceValue { binary(.opSub, a, b) }
    public static func * (a: TraceValue, b: TraceValue) -> TraceValue { binary(.opMul, a, b) }
    public static func / (a: TraceValue, b: TraceValue) -> TraceValue { binary(.opDiv, a, b) }
    public static prefix func - (a: TraceValue) -> TraceValue { a.op(.opNeg) }
    public static func + (a: TraceValue, b: Double) -> TraceValue { binary(.opAdd, a, .constant(b)) }
    public static func - (a: TraceValue, b: Double) -> TraceValue { binary(.opSub, a, .constant(b)) }
    public static func * (a: TraceValue, b: Double) -> TraceValue { binary(.opMul, a, .constant(b)) }
    public static func / (a: TraceValue, b: Double) -> TraceValue { binary(.opDiv, a, .constant(b)) }
    public static func * (a: Double, b: TraceValue) -> TraceValue { binary(.opMul, .constant(a), b) }
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
