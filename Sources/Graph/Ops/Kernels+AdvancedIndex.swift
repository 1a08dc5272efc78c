/// torch's advanced indexing with several index tensors: `x[0, [1, 2]]`, `x[i, j]`,
/// `x[:, i, :, j]`. Integers select first (torch's rule, unlike numpy's: `x[0, :, [1, 2]]` of a
/// `[2, 3, 4, 5]` is `[3, 2, 5]`); the index tensors broadcast to one shape B, which replaces them
/// in place when they sit next to each other among the remaining items, else comes first.
extension Kernels {
    /// One item of an advanced subscript: basic, or the `k`-th index tensor.
    enum AdvancedItem { case basic(IndexItem), tensor(Int) }

    /// The items with the ellipsis expanded, checked against the rank.
    static func advancedItems(_ items: [IndexItem], advanced: [Int], rank: Int) throws(OpError) -> [AdvancedItem] {
        var list: [AdvancedItem] = []
        for (i, item) in items.enumerated() {
            if let k = advanced.firstIndex(of: i) { list.append(.tensor(k)) } else { list.append(.basic(item)) }
        }
        let explicit = list.filter { if case let .basic(b) = $0 { b != .ellipsis && b != .newAxis } else { true } }.count
        guard explicit <= rank else { throw OpError("too many indices for tensor of dimension \(rank)") }
        var out: [AdvancedItem] = []
        for item in list {
            if case .basic(.ellipsis) = item { out += [AdvancedItem](repeating: .basic(.all), count: rank - explicit) } else { out.append(item) }
        }
        while out.filter({ if case .basic(.newAxis) = $0 { false } else { true } }).count < rank { out.append(.basic(.all)) }
        return out
    }

    /// The result's shape, the broadcast index shape, and per item its output axis (basic items;
    /// nil for index tensors, which fill `broadcast`'s axes from `insertAt`).
    static func advancedIndexLayout(_ shape: [Int], _ items: [AdvancedItem], indexShapes: [[Int]]) throws(OpError)
        -> (shape: [Int], broadcast: [Int], insertAt: Int, axes: [Int?]) {
        var broadcast: [Int] = []
        for s in indexShapes { broadcast = try broadcastShape(broadcast, s) }
        // Adjacency is judged once the integers have selected (their items are gone).
        let remaining = items.filter { if case .basic(.at) = $0 { false } else { true } }
        let tensorPositions = remaining.indices.filter { if case .tensor = remaining[$0] { true } else { false } }
        let adjacent = tensorPositions.last.map { $0 - tensorPositions[0] + 1 == tensorPositions.count } ?? true
        var basic: [Int] = []  // the basic items' output sizes, in order
        var insertAt = 0
        var dim = 0
        var basicIndex: [Int?] = []
        var seenTensor = false
        for item in items {
            switch item {
            case .tensor:
                if !seenTensor, adjacent { insertAt = basic.count }
                seenTensor = true
                basicIndex.append(nil)
                dim += 1
            case .basic(.at):
                basicIndex.append(nil)
                dim += 1
            case .basic(.newAxis):
                basicIndex.append(basic.count)
                basic.append(1)
            case let .basic(.slice(start, stop, step)):
                basicIndex.append(basic.count)
                basic.append(try IndexItem.shape(of: [.slice(start: start, stop: stop, step: step)], on: [shape[dim]])[0])
                dim += 1
            case .basic(.ellipsis): throw OpError("an index can only have a single ellipsis ('...')")
            }
        }
        var out = basic
        out.insert(contentsOf: broadcast, at: insertAt)
        let axes = basicIndex.map { j in j.map { $0 < insertAt ? $0 : $0 + broadcast.count } }
        return (out, broadcast, insertAt, axes)
    }

    static func advancedIndexShape(_ shape: [Int], items: [IndexItem], advanced: [Int], indexShapes: [[Int]]) throws(OpError) -> [Int] {
        try advancedIndexLayout(shape, try advancedItems(items, advanced: advanced, rank: shape.count), indexShapes: indexShapes).shape
    }

    /// `x[items]` where `items[advanced[k]]` is index tensor `indices[k]` (int64).
    static func advancedIndex(_ x: Tensor, items: [IndexItem], advanced: [Int], indices: [Tensor]) throws(OpError) -> Tensor {
        let list = try advancedItems(items, advanced: advanced, rank: x.rank)
        let layout = try advancedIndexLayout(x.shape, list, indexShapes: indices.map(\.shape))
        let b = layout.broadcast
        var dimOf: [Int] = []  // source dim of each item (-1 for new axes)
        var d = 0
        for item in list {
            if case .basic(.newAxis) = item { dimOf.append(-1) } else { dimOf.append(d); d += 1 }
        }
        // Each index tensor's positions for every broadcast position, checked against its dim.
        var positions: [[Int]] = []
        for (k, t) in indices.enumerated() {
            guard t.dtype == .int64 else { throw OpError("tensors used as indices must be long, int or bool tensors") }
            let item = list.firstIndex { if case .tensor(k) = $0 { true } else { false } }!
            let size = x.shape[dimOf[item]]
            positions.append(try t.expanded(to: b).int64s.map { v throws(OpError) -> Int in
                let p = v < 0 ? Int(v) + size : Int(v)
                guard p >= 0, p < size else { throw OpError("index \(v) is out of bounds for dimension \(dimOf[item]) with size \(size)", exception: .indexError) }
                return p
            })
        }
        // Per slice item: its first position and step in the source dim (an integer: its position).
        var starts: [Int] = [], steps: [Int] = []
        for (i, item) in list.enumerated() {
            if case let .basic(.at(p)) = item {
                let size = x.shape[dimOf[i]]
                let q = p < 0 ? p + size : p
                guard q >= 0, q < size else { throw OpError("index \(p) is out of bounds for dimension \(dimOf[i]) with size \(size)", exception: .indexError) }
                starts.append(q)
                steps.append(0)
                continue
            }
            guard case let .basic(.slice(start, stop, step)) = item else { starts.append(0); steps.append(0); continue }
            let resolved = try IndexItem.resolve([.slice(start: start, stop: stop, step: step)], shape: [x.shape[dimOf[i]]])
            starts.append(resolved.dims[0].start)
            steps.append(resolved.dims[0].step)
        }
        let outShape = layout.shape
        let total = outShape.reduce(1, *)
        let strides = Tensor.contiguousStrides(x.shape)
        let bStrides = Tensor.contiguousStrides(b)
        var offsets = [Int](repeating: 0, count: total)
        var coordinate = [Int](repeating: 0, count: outShape.count)
        for n in 0..<total {
            var rest = n
            for a in stride(from: outShape.count - 1, through: 0, by: -1) {
                coordinate[a] = rest % outShape[a]
                rest /= outShape[a]
            }
            var bIndex = 0
            for j in 0..<b.count { bIndex += coordinate[layout.insertAt + j] * bStrides[j] }
            var offset = 0
            for (i, item) in list.enumerated() {
                switch item {
                case let .tensor(k): offset += positions[k][bIndex] * strides[dimOf[i]]
                case .basic(.slice): offset += (starts[i] + coordinate[layout.axes[i]!] * steps[i]) * strides[dimOf[i]]
                case .basic(.at): offset += starts[i] * strides[dimOf[i]]
                default: break
                }
            }
            offsets[n] = offset
        }
        let source = x.contiguous()
        switch source.dtype {
        case .float32: let v = source.floats; return Tensor(shape: outShape, floats: offsets.map { v[$0] })
        case .int64: let v = source.int64s; return Tensor(shape: outShape, ints: offsets.map { v[$0] })
        case .bool: let v = source.bools; return Tensor(shape: outShape, bools: offsets.map { v[$0] })
        }
    }
}
