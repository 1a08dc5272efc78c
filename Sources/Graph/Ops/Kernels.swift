import Foundation

/// The kernels behind the op registry: loops over contiguous typed buffers, with torch's
/// broadcasting, type promotion and reduction rules.
public enum Kernels {
    /// `remainder` and `floorDivide` are Python's `%` and `//` (the sign of the divisor; floored).
    public enum Binary: Sendable { case add, sub, mul, div, remainder, floorDivide }

    // MARK: - shapes and types

    /// torch's broadcast of two shapes.
    public static func broadcastShape(_ a: [Int], _ b: [Int]) throws(OpError) -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else {
                throw OpError("shapes \(a) and \(b) cannot be broadcast together")
            }
            out[i] = max(x, y)
        }
        return out
    }

    /// torch's result type of a binary op: a zero-dim operand (a Python number or a 0-d tensor)
    /// decides only when its category (bool < int < float) is higher than the other's.
    public static func promote(_ a: TensorType, _ b: TensorType, _ op: Binary) -> DType {
        let dtype: DType
        if a.dtype == b.dtype {
            dtype = a.dtype
        } else if (a.shape.isEmpty) == (b.shape.isEmpty) {
            dtype = a.dtype.category >= b.dtype.category ? a.dtype : b.dtype
        } else {
            let (dimensioned, zeroDim) = a.shape.isEmpty ? (b, a) : (a, b)
            dtype = zeroDim.dtype.category > dimensioned.dtype.category ? zeroDim.dtype : dimensioned.dtype
        }
        // True division is floating; arithmetic on bools counts them as integers.
        if op == .div { return .float32 }
        return dtype == .bool ? .int64 : dtype
    }

    public static func binaryType(_ a: TensorType, _ b: TensorType, _ op: Binary) throws(OpError) -> TensorType {
        TensorType(shape: try broadcastShape(a.shape, b.shape), dtype: promote(a, b, op))
    }

    // MARK: - elementwise

    public static func binary(_ op: Binary, _ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        let type = try binaryType(a.type, b.type, op)
        let x = try a.expanded(to: type.shape), y = try b.expanded(to: type.shape)
        switch type.dtype {
        case .float32:
            let (u, v) = (x.floats, y.floats)
            var out = [Float](repeating: 0, count: u.count)
            switch op {
            case .add: for i in out.indices { out[i] = u[i] + v[i] }
            case .sub: for i in out.indices { out[i] = u[i] - v[i] }
            case .mul: for i in out.indices { out[i] = u[i] * v[i] }
            case .div: for i in out.indices { out[i] = u[i] / v[i] }
            case .remainder:
                for i in out.indices {
                    let r = fmodf(u[i], v[i])
                    out[i] = r != 0 && (r < 0) != (v[i] < 0) ? r + v[i] : r
                }
            case .floorDivide: for i in out.indices { out[i] = (u[i] / v[i]).rounded(.down) }
            }
            return Tensor(shape: type.shape, floats: out)
        case .int64, .bool:
            let (u, v) = (x.int64s, y.int64s)
            var out = [Int64](repeating: 0, count: u.count)
            switch op {
            case .add: for i in out.indices { out[i] = u[i] &+ v[i] }
            case .sub: for i in out.indices { out[i] = u[i] &- v[i] }
            case .mul: for i in out.indices { out[i] = u[i] &* v[i] }
            case .div: break  // promoted to float32 above
            case .remainder, .floorDivide:
                for i in out.indices {
                    guard v[i] != 0 else { throw OpError("ZeroDivisionError", exception: nil) }
                    var q = u[i] / v[i], r = u[i] % v[i]
                    if r != 0 && (r < 0) != (v[i] < 0) { q -= 1; r += v[i] }
                    out[i] = op == .remainder ? r : q
                }
            }
            if type.dtype == .bool { return Tensor(shape: type.shape, bools: out.map { $0 != 0 }) }
            return Tensor(shape: type.shape, ints: out)
        }
    }

    /// `f` applied to every element: float32 stays float32, int64 stays int64.
    public static func map(_ x: Tensor, float f: (Float) -> Float, int g: (Int64) -> Int64) -> Tensor {
        switch x.dtype {
        case .float32: Tensor(shape: x.shape, floats: x.floats.map(f))
        case .int64, .bool: Tensor(shape: x.shape, ints: x.int64s.map(g))
        }
    }

    // MARK: - reductions

    /// A dim as torch accepts it (negative counts from the end), checked against `rank`.
    public static func normalize(dim: Int, rank: Int) throws(OpError) -> Int {
        let r = max(rank, 1)
        let d = dim < 0 ? dim + r : dim
        guard d >= 0, d < r else {
            throw OpError("dimension out of range (expected to be in range of [\(-r), \(r - 1)], but got \(dim))")
        }
        return d
    }

    /// The shape after reducing `dim` (every dim when nil).
    public static func reducedShape(_ shape: [Int], dim: Int?, keepdim: Bool) throws(OpError) -> [Int] {
        guard let dim else { return keepdim ? shape.map { _ in 1 } : [] }
        guard !shape.isEmpty else {
            _ = try normalize(dim: dim, rank: 0)
            return []
        }
        let d = try normalize(dim: dim, rank: shape.count)
        var out = shape
        if keepdim { out[d] = 1 } else { out.remove(at: d) }
        return out
    }

    public enum Reduction: Sendable { case sum, mean, max, argmax }

    /// (outer, size, inner) of `shape` around `dim` (all elements as `size` when nil).
    static func split(_ shape: [Int], dim: Int?) throws(OpError) -> (Int, Int, Int) {
        guard let dim, !shape.isEmpty else { return (1, shape.reduce(1, *), 1) }
        let d = try normalize(dim: dim, rank: shape.count)
        return (shape[..<d].reduce(1, *), shape[d], shape[(d + 1)...].reduce(1, *))
    }

    /// Reduces along `dim` (every element when nil). `max` and `argmax` treat NaN as the largest
    /// value (torch's rule): the result is NaN, at the first NaN's index.
    public static func reduce(_ x: Tensor, _ reduction: Reduction, dim: Int?, keepdim: Bool) throws(OpError) -> Tensor {
        let shape = try reducedShape(x.shape, dim: dim, keepdim: keepdim)
        let (outer, size, inner) = try split(x.shape, dim: dim)
        if size == 0, reduction == .max || reduction == .argmax {
            throw OpError("\(reduction)(): cannot reduce an empty dimension")
        }
        let outCount = outer * inner
        if x.dtype != .float32, reduction == .sum || reduction == .max {
            let v = x.int64s
            var out = [Int64](repeating: 0, count: outCount)
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc: Int64 = reduction == .max ? Int64.min : 0
                    for k in 0..<size {
                        let e = v[(o * size + k) * inner + i]
                        acc = reduction == .max ? Swift.max(acc, e) : acc &+ e
                    }
                    out[o * inner + i] = acc
                }
            }
            return Tensor(shape: shape, ints: out)
        }
        let v = x.floats
        switch reduction {
        case .sum, .mean:
            var out = [Float](repeating: 0, count: outCount)
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = 0.0
                    for k in 0..<size { acc += Double(v[(o * size + k) * inner + i]) }
                    out[o * inner + i] = Float(reduction == .mean ? acc / Double(size) : acc)
                }
            }
            return Tensor(shape: shape, floats: out)
        case .max, .argmax:
            var values = [Float](repeating: 0, count: outCount), indices = [Int64](repeating: 0, count: outCount)
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = v[o * size * inner + i], at = 0
                    if !best.isNaN {
                        for k in 1..<Swift.max(size, 1) {
                            let e = v[(o * size + k) * inner + i]
                            if e.isNaN { best = e; at = k; break }
                            if e > best { best = e; at = k }
                        }
                    }
                    values[o * inner + i] = best
                    indices[o * inner + i] = Int64(at)
                }
            }
            return reduction == .max ? Tensor(shape: shape, floats: values) : Tensor(shape: shape, ints: indices)
        }
    }

    /// Softmax along `dim` in float32, max-subtracted.
    public static func softmax(_ x: Tensor, dim: Int) throws(OpError) -> Tensor {
        let (outer, size, inner) = try split(x.shape, dim: x.shape.isEmpty ? nil : dim)
        if x.shape.isEmpty { _ = try normalize(dim: dim, rank: 0) }
        var v = x.floats
        for o in 0..<outer {
            for i in 0..<inner {
                var m = -Float.infinity
                for k in 0..<size { m = Swift.max(m, v[(o * size + k) * inner + i]) }
                var s = 0.0
                for k in 0..<size {
                    let j = (o * size + k) * inner + i
                    v[j] = Foundation.exp(v[j] - m)
                    s += Double(v[j])
                }
                for k in 0..<size {
                    let j = (o * size + k) * inner + i
                    v[j] = Float(Double(v[j]) / s)
                }
            }
        }
        return Tensor(shape: x.shape, floats: v)
    }
}
