/// Kernels that rearrange elements: views (reshape, permute, transpose, unsqueeze, squeeze,
/// expand) and copies (cat, take). Each shape rule is a function the type rule and the kernel share.
extension Kernels {
    /// The number of elements of `shape`, refused when a size is negative or the product
    /// overflows (shapes a client sends must not trap).
    public static func elementCount(_ shape: [Int]) throws(OpError) -> Int {
        var n = 1
        for d in shape {
            guard d >= 0 else { throw OpError("negative dimension \(d) in shape \(shape)") }
            let (m, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, m <= 1 << 40 else { throw OpError("shape \(shape) is too large") }
            n = m
        }
        return n
    }

    /// `reshape`/`view`: one `-1` is inferred; the element count must stay.
    public static func reshapeShape(_ shape: [Int], _ target: [Int]) throws(OpError) -> [Int] {
        let count = shape.reduce(1, *)
        let inferred = target.indices.filter { target[$0] == -1 }
        guard inferred.count <= 1, target.allSatisfy({ $0 >= -1 }) else { throw OpError("shape '\(target)' is invalid") }
        _ = try elementCount(target.filter { $0 != -1 })
        var out = target
        if let i = inferred.first {
            let known = target.filter { $0 != -1 }.reduce(1, *)
            guard known > 0, count % known == 0 else { throw OpError("shape '\(target)' is invalid for input of size \(count)") }
            out[i] = count / known
        }
        guard out.reduce(1, *) == count else { throw OpError("shape '\(target)' is invalid for input of size \(count)") }
        return out
    }

    public static func reshape(_ x: Tensor, _ target: [Int]) throws(OpError) -> Tensor {
        let shape = try reshapeShape(x.shape, target)
        // A contiguous tensor is reshaped as a view (torch's `view`): writes through it reach the
        // module's buffer; others are copied first, as torch's `reshape` copies them.
        let c = x.isContiguous ? x : x.contiguous()
        return Tensor(shape: shape, strides: Tensor.contiguousStrides(shape), offset: c.offset, storage: c.storage)
    }

    public static func permuteShape(_ shape: [Int], _ dims: [Int]) throws(OpError) -> [Int] {
        guard dims.count == shape.count else {
            throw OpError("permute(sparse_coo): number of dimensions in the tensor input does not match the length of the desired ordering of dimensions i.e. input.dim() = \(shape.count) is not equal to len(dims) = \(dims.count)")
        }
        var seen = Set<Int>()
        var out: [Int] = []
        for d in dims {
            let n = try normalize(dim: d, rank: shape.count)
            guard seen.insert(n).inserted else { throw OpError("permute(): duplicate dims are not allowed.") }
            out.append(shape[n])
        }
        return out
    }

    public static func permute(_ x: Tensor, _ dims: [Int]) throws(OpError) -> Tensor {
        let shape = try permuteShape(x.shape, dims)
        var strides: [Int] = []
        for d in dims { strides.append(x.strides[try normalize(dim: d, rank: x.rank)]) }
        return Tensor(shape: shape, strides: strides, offset: x.offset, storage: x.storage)
    }

    /// The permutation that swaps two dims.
    public static func transposition(rank: Int, _ a: Int, _ b: Int) throws(OpError) -> [Int] {
        var dims = Array(0..<rank)
        guard rank > 0 else {
            _ = try normalize(dim: a, rank: 0)
            _ = try normalize(dim: b, rank: 0)
            return []
        }
        dims.swapAt(try normalize(dim: a, rank: rank), try normalize(dim: b, rank: rank))
        return dims
    }

    public static func unsqueezeShape(_ shape: [Int], dim: Int) throws(OpError) -> [Int] {
        let d = try normalize(dim: dim, rank: shape.count + 1)
        var out = shape
        out.insert(1, at: d)
        return out
    }

    public static func unsqueeze(_ x: Tensor, dim: Int) throws(OpError) -> Tensor {
        let d = try normalize(dim: dim, rank: x.rank + 1)
        var strides = x.strides
        strides.insert(d < x.rank ? x.strides[d] * x.shape[d] : 1, at: d)
        return Tensor(shape: try unsqueezeShape(x.shape, dim: dim), strides: strides, offset: x.offset, storage: x.storage)
    }

    /// The dims `squeeze` removes: `dim` if it has size 1, every size-1 dim when nil.
    static func squeezed(_ shape: [Int], dim: Int?) throws(OpError) -> Set<Int> {
        guard let dim else { return Set(shape.indices.filter { shape[$0] == 1 }) }
        if shape.isEmpty { _ = try normalize(dim: dim, rank: 0); return [] }
        let d = try normalize(dim: dim, rank: shape.count)
        return shape[d] == 1 ? [d] : []
    }

    public static func squeezeShape(_ shape: [Int], dim: Int?) throws(OpError) -> [Int] {
        let drop = try squeezed(shape, dim: dim)
        return shape.indices.filter { !drop.contains($0) }.map { shape[$0] }
    }

    public static func squeeze(_ x: Tensor, dim: Int?) throws(OpError) -> Tensor {
        let drop = try squeezed(x.shape, dim: dim)
        let keep = x.shape.indices.filter { !drop.contains($0) }
        return Tensor(shape: keep.map { x.shape[$0] }, strides: keep.map { x.strides[$0] }, offset: x.offset, storage: x.storage)
    }

    public static func flattenShape(_ shape: [Int], start: Int, end: Int) throws(OpError) -> [Int] {
        guard !shape.isEmpty else { return [1] }
        let (s, e) = (try normalize(dim: start, rank: shape.count), try normalize(dim: end, rank: shape.count))
        guard s <= e else { throw OpError("flatten() has invalid args: start_dim cannot come after end_dim") }
        return Array(shape[..<s]) + [shape[s...e].reduce(1, *)] + Array(shape[(e + 1)...])
    }

    /// `expand(sizes)`: `-1` keeps a dim; size-1 dims repeat (a view).
    public static func expandShape(_ shape: [Int], _ sizes: [Int]) throws(OpError) -> [Int] {
        guard sizes.count >= shape.count else {
            throw OpError("expand: the number of sizes provided (\(sizes.count)) must be greater or equal to the number of dimensions in the tensor (\(shape.count))")
        }
        let lead = sizes.count - shape.count
        var out = sizes
        for d in shape.indices where sizes[lead + d] == -1 { out[lead + d] = shape[d] }
        guard out.allSatisfy({ $0 >= 0 }) else { throw OpError("expand: -1 is not allowed in a leading, non-existing dimension") }
        _ = try elementCount(out)
        for d in shape.indices where shape[d] != 1 && shape[d] != out[lead + d] {
            throw OpError("The expanded size of the tensor (\(out[lead + d])) must match the existing size (\(shape[d])) at non-singleton dimension \(lead + d).  Target sizes: \(sizes).  Tensor sizes: \(shape)")
        }
        return out
    }

    public static func catShape(_ shapes: [[Int]], dim: Int) throws(OpError) -> [Int] {
        guard let first = shapes.first else { throw OpError("cat(): expected a non-empty list of Tensors") }
        let d = try normalize(dim: dim, rank: first.count)
        guard !first.isEmpty else { throw OpError("zero-dimensional tensor cannot be concatenated") }
        var out = first
        for s in shapes.dropFirst() {
            guard s.count == first.count, s.indices.allSatisfy({ $0 == d || s[$0] == first[$0] }) else {
                throw OpError("Sizes of tensors must match except in dimension \(d): got \(first) and \(s)")
            }
            out[d] += s[d]
        }
        return out
    }

    /// The promoted dtype of several tensors (cat, stack).
    static func commonType(_ types: [DType]) -> DType { types.max { $0.category < $1.category } ?? .float32 }

    public static func cat(_ xs: [Tensor], dim: Int) throws(OpError) -> Tensor {
        let shape = try catShape(xs.map(\.shape), dim: dim)
        let d = try normalize(dim: dim, rank: shape.count)
        let outer = shape[..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *)
        let dtype = commonType(xs.map(\.dtype))
        func gather<T>(_ arrays: [[T]]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(shape.reduce(1, *))
            for o in 0..<outer {
                for (x, a) in zip(xs, arrays) {
                    let chunk = x.shape[d] * inner
                    out.append(contentsOf: a[(o * chunk)..<((o + 1) * chunk)])
                }
            }
            return out
        }
        switch dtype {
        case .float32: return Tensor(shape: shape, floats: gather(xs.map(\.floats)))
        case .int64: return Tensor(shape: shape, ints: gather(xs.map(\.int64s)))
        case .bool: return Tensor(shape: shape, bools: gather(xs.map(\.bools)))
        }
    }

    public static func takeShape(_ shape: [Int], index: [Int], dim: Int) throws(OpError) -> [Int] {
        guard !shape.isEmpty else { throw OpError("invalid index of a 0-dim tensor") }
        let d = try normalize(dim: dim, rank: shape.count)
        return Array(shape[..<d]) + index + Array(shape[(d + 1)...])
    }

    /// `x[..., idx, ...]` with an integer tensor at `dim`: the dim is replaced by the index's shape.
    public static func take(_ x: Tensor, _ index: Tensor, dim: Int) throws(OpError) -> Tensor {
        guard index.dtype != .float32 else { throw OpError("tensors used as indices must be long, int or bool tensors") }
        let shape = try takeShape(x.shape, index: index.shape, dim: dim)
        let d = try normalize(dim: dim, rank: x.rank)
        guard try elementCount(shape) <= 1 << 28 else { throw OpError("take: the result of shape \(shape) is too large") }
        let (outer, size, inner) = (x.shape[..<d].reduce(1, *), x.shape[d], x.shape[(d + 1)...].reduce(1, *))
        var picks: [Int] = []
        for i in index.int64s {
            let p = i < 0 ? Int(i) + size : Int(i)
            guard p >= 0, p < size else { throw OpError("index \(i) is out of bounds for dimension \(d) with size \(size)", exception: .indexError) }
            picks.append(p)
        }
        func gather<T>(_ a: [T]) -> [T] {
            var out: [T] = []
            out.reserveCapacity(outer * picks.count * inner)
            for o in 0..<outer { for p in picks { out.append(contentsOf: a[((o * size + p) * inner)..<((o * size + p + 1) * inner)]) } }
            return out
        }
        switch x.dtype {
        case .float32: return Tensor(shape: shape, floats: gather(x.floats))
        case .int64: return Tensor(shape: shape, ints: gather(x.int64s))
        case .bool: return Tensor(shape: shape, bools: gather(x.bools))
        }
    }
}
