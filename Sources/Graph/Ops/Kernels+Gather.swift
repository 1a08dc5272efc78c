/// torch's `gather`, `scatter`, `tril`/`triu` and `diag`: index-driven reads and writes along a
/// dim, and the triangle and diagonal selections.
extension Kernels {
    /// Calls `body` with every position of `shape` as its coordinates (row-major).
    static func forEachCoordinate(_ shape: [Int], _ body: ([Int], Int) throws(OpError) -> Void) throws(OpError) {
        let total = shape.reduce(1, *)
        var c = [Int](repeating: 0, count: shape.count)
        for n in 0..<total {
            try body(c, n)
            var a = shape.count - 1
            while a >= 0 {
                c[a] += 1
                if c[a] < shape[a] { break }
                c[a] = 0
                a -= 1
            }
        }
    }

    static func flatOffset(_ c: [Int], _ strides: [Int]) -> Int {
        var o = 0
        for i in c.indices { o += c[i] * strides[i] }
        return o
    }

    /// The index tensor's shape for `gather`/`scatter` along `dim` of `x`: same rank, no dim
    /// larger than `x`'s except `dim` itself.
    public static func gatherShape(_ x: [Int], index: [Int], dim: Int) throws(OpError) -> [Int] {
        let d = try normalize(dim: dim, rank: Swift.max(x.count, 1))
        guard index.count == x.count else { throw OpError("Index tensor must have the same number of dimensions as input tensor") }
        for a in x.indices where a != d && index[a] > x[a] {
            throw OpError("Size does not match at dimension \(a) expected index \(index) to be no larger than self \(x) apart from dimension \(d)")
        }
        return index
    }

    /// `out[i][j][k] = x[i][index[i][j][k]][k]` (for dim 1).
    public static func gather(_ x: Tensor, dim: Int, index: Tensor) throws(OpError) -> Tensor {
        guard index.dtype == .int64 else { throw OpError("gather(): Expected dtype int64 for index") }
        let shape = try gatherShape(x.shape, index: index.shape, dim: dim)
        let d = try normalize(dim: dim, rank: Swift.max(x.rank, 1))
        let source = x.contiguous(), picks = index.contiguous().int64s
        let strides = Tensor.contiguousStrides(x.shape)
        var offsets = [Int](repeating: 0, count: shape.reduce(1, *))
        try forEachCoordinate(shape) { (c, n) throws(OpError) in
            var at = c
            let p = Int(picks[n])
            guard p >= -x.shape[d], p < x.shape[d] else {
                throw OpError("index \(p) is out of bounds for dimension \(d) with size \(x.shape[d])", exception: .indexError)
            }
            at[d] = p < 0 ? p + x.shape[d] : p
            offsets[n] = flatOffset(at, strides)
        }
        switch source.dtype {
        case .float32: let v = source.floats; return Tensor(shape: shape, floats: offsets.map { v[$0] })
        case .int64: let v = source.int64s; return Tensor(shape: shape, ints: offsets.map { v[$0] })
        case .bool: let v = source.bools; return Tensor(shape: shape, bools: offsets.map { v[$0] })
        }
    }

    /// A copy of `x` with `x[i][index[i][j]][k] = src[i][j][k]` (for dim 1); `src` may be a scalar.
    public static func scatter(_ x: Tensor, dim: Int, index: Tensor, source src: Tensor) throws(OpError) -> Tensor {
        guard index.dtype == .int64 else { throw OpError("scatter(): Expected dtype int64 for index") }
        _ = try gatherShape(x.shape, index: index.shape, dim: dim)
        let d = try normalize(dim: dim, rank: Swift.max(x.rank, 1))
        let strides = Tensor.contiguousStrides(x.shape)
        let values = src.rank == 0 ? src.converted(to: x.dtype) : src.converted(to: x.dtype).contiguous()
        let srcStrides = Tensor.contiguousStrides(src.shape)
        if src.rank > 0 {
            for a in index.shape.indices where index.shape[a] > src.shape[a] {
                throw OpError("Expected index \(index.shape) to be no larger than src \(src.shape)")
            }
        }
        let picks = index.contiguous().int64s
        var targets: [(Int, Int)] = []  // (offset in x, offset in src)
        try forEachCoordinate(index.shape) { (c, n) throws(OpError) in
            var at = c
            let p = Int(picks[n])
            guard p >= -x.shape[d], p < x.shape[d] else {
                throw OpError("index \(p) is out of bounds for dimension \(d) with size \(x.shape[d])", exception: .indexError)
            }
            at[d] = p < 0 ? p + x.shape[d] : p
            targets.append((flatOffset(at, strides), src.rank == 0 ? 0 : flatOffset(c, srcStrides)))
        }
        switch x.dtype {
        case .float32:
            var out = x.floats, v = values.floats
            if v.isEmpty { v = [0] }
            for (t, s) in targets { out[t] = v[s] }
            return Tensor(shape: x.shape, floats: out)
        case .int64:
            var out = x.int64s
            let v = values.int64s
            for (t, s) in targets { out[t] = v[s] }
            return Tensor(shape: x.shape, ints: out)
        case .bool:
            var out = x.bools
            let v = values.bools
            for (t, s) in targets { out[t] = v[s] }
            return Tensor(shape: x.shape, bools: out)
        }
    }

    /// `tril` (lower: keep `col - row <= diagonal`) or `triu` (keep `col - row >= diagonal`) of
    /// the last two dims; the rest is zero.
    public static func triangle(_ x: Tensor, lower: Bool, diagonal: Int) throws(OpError) -> Tensor {
        guard x.rank >= 2 else { throw OpError("\(lower ? "tril" : "triu"): input tensor must have at least 2 dimensions") }
        let (rows, cols) = (x.shape[x.rank - 2], x.shape[x.rank - 1])
        func keep(_ n: Int) -> Bool {
            let col = n % cols, row = (n / cols) % rows
            return lower ? col - row <= diagonal : col - row >= diagonal
        }
        switch x.dtype {
        case .float32: return Tensor(shape: x.shape, floats: x.floats.enumerated().map { keep($0.offset) ? $0.element : 0 })
        case .int64: return Tensor(shape: x.shape, ints: x.int64s.enumerated().map { keep($0.offset) ? $0.element : 0 })
        case .bool: return Tensor(shape: x.shape, bools: x.bools.enumerated().map { keep($0.offset) && $0.element })
        }
    }

    public static func diagShape(_ x: [Int], diagonal k: Int) throws(OpError) -> [Int] {
        switch x.count {
        case 1: return [x[0] + Swift.abs(k), x[0] + Swift.abs(k)]
        case 2:
            let n = k >= 0 ? Swift.min(x[0], x[1] - k) : Swift.min(x[0] + k, x[1])
            return [Swift.max(n, 0)]
        default: throw OpError("diag(): Supports 1D or 2D tensors. Got \(x.count)D")
        }
    }

    /// `diag`: a 1-d tensor on a square matrix's `diagonal`, or a matrix's diagonal as a 1-d tensor.
    public static func diag(_ x: Tensor, diagonal k: Int) throws(OpError) -> Tensor {
        let shape = try diagShape(x.shape, diagonal: k)
        let c = x.contiguous()
        if x.rank == 1 {
            let n = shape[0]
            var offsets: [Int?] = [Int?](repeating: nil, count: n * n)
            for i in 0..<x.shape[0] { offsets[(k >= 0 ? i : i - k) * n + (k >= 0 ? i + k : i)] = i }
            switch c.dtype {
            case .float32: let v = c.floats; return Tensor(shape: shape, floats: offsets.map { $0.map { v[$0] } ?? 0 })
            case .int64: let v = c.int64s; return Tensor(shape: shape, ints: offsets.map { $0.map { v[$0] } ?? 0 })
            case .bool: let v = c.bools; return Tensor(shape: shape, bools: offsets.map { $0.map { v[$0] } ?? false })
            }
        }
        let cols = x.shape[1]
        let offsets = (0..<shape[0]).map { i in k >= 0 ? i * cols + i + k : (i - k) * cols + i }
        switch c.dtype {
        case .float32: let v = c.floats; return Tensor(shape: shape, floats: offsets.map { v[$0] })
        case .int64: let v = c.int64s; return Tensor(shape: shape, ints: offsets.map { v[$0] })
        case .bool: let v = c.bools; return Tensor(shape: shape, bools: offsets.map { v[$0] })
        }
    }
}
