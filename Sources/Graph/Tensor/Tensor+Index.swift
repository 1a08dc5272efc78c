/// One element of an index expression, as in `x[0, -1, 2:5, ..., None]`.
public enum IndexItem: Equatable, Sendable {
    case at(Int)
    case slice(start: Int?, stop: Int?, step: Int?)
    case ellipsis
    case newAxis

    public static let all = IndexItem.slice(start: nil, stop: nil, step: nil)
}

/// An index resolved against a shape: the view's shape, and per output dim which source dim it
/// walks (nil for a new axis) with what start and step; `fixed` are the integer-indexed dims.
struct ResolvedIndex {
    var shape: [Int]
    var dims: [(source: Int?, start: Int, step: Int)]
    var fixed: [(source: Int, position: Int)]
}

extension IndexItem {
    /// torch's rules: negative positions count from the end; slices clamp; one ellipsis at most.
    static func resolve(_ items: [IndexItem], shape: [Int]) throws(OpError) -> ResolvedIndex {
        let explicit = items.filter { $0 != .ellipsis && $0 != .newAxis }.count
        guard explicit <= shape.count else {
            throw OpError("too many indices for tensor of dimension \(shape.count)")
        }
        guard items.filter({ $0 == .ellipsis }).count <= 1 else { throw OpError("an index can only have a single ellipsis ('...')") }
        var expanded: [IndexItem] = []
        for item in items {
            if item == .ellipsis {
                expanded += [IndexItem](repeating: .all, count: shape.count - explicit)
            } else {
                expanded.append(item)
            }
        }
        expanded += [IndexItem](repeating: .all, count: shape.count - expanded.filter { $0 != .newAxis }.count)
        var out = ResolvedIndex(shape: [], dims: [], fixed: [])
        var d = 0
        for item in expanded {
            switch item {
            case .newAxis:
                out.shape.append(1)
                out.dims.append((nil, 0, 0))
            case let .at(i):
                let size = shape[d]
                let p = i < 0 ? i + size : i
                guard p >= 0, p < size else {
                    throw OpError("index \(i) is out of bounds for dimension \(d) with size \(size)", exception: .indexError)
                }
                out.fixed.append((d, p))
                d += 1
            case let .slice(start, stop, step):
                let size = shape[d]
                guard (step ?? 1) > 0 else { throw OpError("slice step must be positive") }
                let st = min(step ?? 1, max(size, 1))  // a longer step takes one element, as it would
                func clamp(_ v: Int?, _ fallback: Int) -> Int {
                    guard let v else { return fallback }
                    let p = v < 0 ? v + size : v
                    return min(max(p, 0), size)
                }
                let lo = clamp(start, 0), hi = clamp(stop, size)
                let length = lo < hi ? (hi - lo - 1) / st + 1 : 0
                out.shape.append(length)
                out.dims.append((d, lo, st))
                d += 1
            case .ellipsis:
                break
            }
        }
        return out
    }

    /// The shape of `x[items]` for `x` of `shape`: the compiler's static check.
    public static func shape(of items: [IndexItem], on shape: [Int]) throws(OpError) -> [Int] {
        try resolve(items, shape: shape).shape
    }
}

extension Tensor {
    /// `self[items]` as a view (no copy).
    public func indexed(_ items: [IndexItem]) throws(OpError) -> Tensor {
        let r = try IndexItem.resolve(items, shape: shape)
        var offset = self.offset
        for (d, p) in r.fixed { offset += p * strides[d] }
        var strides: [Int] = []
        for dim in r.dims {
            guard let source = dim.source else {
                strides.append(0)
                continue
            }
            offset += dim.start * self.strides[source]
            strides.append(dim.step * self.strides[source])
        }
        return Tensor(shape: r.shape, strides: strides, offset: offset, storage: storage)
    }

    /// A view of this tensor broadcast to `target` (stride 0 along the repeated dims).
    public func expanded(to target: [Int]) throws(OpError) -> Tensor {
        if shape == target { return self }
        guard target.count >= rank else { throw OpError("cannot broadcast shape \(shape) to \(target)") }
        let lead = target.count - rank
        var strides = [Int](repeating: 0, count: target.count)
        for d in 0..<rank {
            if shape[d] == target[lead + d] {
                strides[lead + d] = self.strides[d]
            } else if shape[d] != 1 {
                throw OpError("cannot broadcast shape \(shape) to \(target)")
            }
        }
        return Tensor(shape: target, strides: strides, offset: offset, storage: storage)
    }

    /// Writes `value` (broadcast to the view's shape, converted to this dtype) into the elements
    /// this view covers. Only a live buffer can be written: graph values are immutable.
    public func write(_ value: Tensor) throws(OpError) {
        let source = try value.expanded(to: shape)
        switch storage {
        case let .liveFloats(buffer):
            let values = source.floats
            var i = 0
            forEachOffset { buffer[$0] = values[i]; i += 1 }
        case let .liveIds(buffer):
            let values = source.int64s
            var i = 0
            forEachOffset { buffer[$0] = Int32(truncatingIfNeeded: values[i]); i += 1 }
        default:
            throw OpError("only a module's input or output can be assigned to")
        }
    }
}
