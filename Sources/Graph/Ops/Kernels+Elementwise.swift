import Foundation

/// Elementwise kernels beyond the four arithmetic ops: comparisons, logic, powers, float maps,
/// clamp, where and casts. Broadcasting and type promotion follow torch.
extension Kernels {
    public enum Compare: String, Sendable, CaseIterable { case eq, ne, lt, le, gt, ge }
    public enum Logical: String, Sendable, CaseIterable { case and, or, xor }

    /// Both operands broadcast to their common shape, converted to `dtype`.
    static func broadcastPair(_ a: Tensor, _ b: Tensor) throws(OpError) -> (Tensor, Tensor, [Int]) {
        let shape = try broadcastShape(a.shape, b.shape)
        return (try a.expanded(to: shape), try b.expanded(to: shape), shape)
    }

    /// The dtype both operands are compared or combined in (torch's `result_type`): bools stay
    /// bools, otherwise the arithmetic promotion.
    public static func resultType(_ a: TensorType, _ b: TensorType) -> DType {
        a.dtype == .bool && b.dtype == .bool ? .bool : promote(a, b, .add)
    }

    public static func compare(_ op: Compare, _ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        let (x, y, shape) = try broadcastPair(a, b)
        func apply<T: Comparable>(_ u: [T], _ v: [T]) -> [Bool] {
            switch op {
            case .eq: zip(u, v).map(==)
            case .ne: zip(u, v).map(!=)
            case .lt: zip(u, v).map(<)
            case .le: zip(u, v).map(<=)
            case .gt: zip(u, v).map(>)
            case .ge: zip(u, v).map(>=)
            }
        }
        let out = resultType(a.type, b.type) == .float32
            ? apply(x.floats, y.floats) : apply(x.int64s, y.int64s)
        return Tensor(shape: shape, bools: out)
    }

    /// `&`, `|`, `^`: logical on bools, bitwise on integers (as torch); floats are refused.
    public static func logical(_ op: Logical, _ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        guard a.dtype != .float32, b.dtype != .float32 else {
            throw OpError("bitwise_\(op.rawValue) is not implemented for float tensors")
        }
        let (x, y, shape) = try broadcastPair(a, b)
        if a.dtype == .bool && b.dtype == .bool {
            let (u, v) = (x.bools, y.bools)
            let out: [Bool] = switch op {
            case .and: zip(u, v).map { $0 && $1 }
            case .or: zip(u, v).map { $0 || $1 }
            case .xor: zip(u, v).map { $0 != $1 }
            }
            return Tensor(shape: shape, bools: out)
        }
        let (u, v) = (x.int64s, y.int64s)
        let out: [Int64] = switch op {
        case .and: zip(u, v).map { $0 & $1 }
        case .or: zip(u, v).map { $0 | $1 }
        case .xor: zip(u, v).map { $0 ^ $1 }
        }
        return Tensor(shape: shape, ints: out)
    }

    /// `~x`: logical not on bools, bitwise not on integers.
    public static func bitwiseNot(_ x: Tensor) throws(OpError) -> Tensor {
        switch x.dtype {
        case .bool: return Tensor(shape: x.shape, bools: x.bools.map { !$0 })
        case .int64: return Tensor(shape: x.shape, ints: x.int64s.map { ~$0 })
        case .float32: throw OpError("bitwise_not is not implemented for float tensors")
        }
    }

    public static func pow(_ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        let dtype = promote(a.type, b.type, .mul)
        let (x, y, shape) = try broadcastPair(a, b)
        if dtype == .float32 {
            let (u, v) = (x.floats, y.floats)
            return Tensor(shape: shape, floats: zip(u, v).map { Foundation.powf($0, $1) })
        }
        let (u, v) = (x.int64s, y.int64s)
        var out = [Int64](repeating: 0, count: u.count)
        for i in out.indices {
            guard v[i] >= 0 else { throw OpError("Integers to negative integer powers are not allowed.") }
            var r: Int64 = 1, base = u[i], e = v[i]
            while e > 0 {
                if e & 1 == 1 { r = r &* base }
                base = base &* base
                e >>= 1
            }
            out[i] = r
        }
        return Tensor(shape: shape, ints: out)
    }

    public enum FloatMap: String, Sendable, CaseIterable { case exp, log, sqrt, tanh, sigmoid, gelu, gelu_tanh, rsqrt, sin, cos }

    /// A float function of every element; integer inputs become float32 (as torch).
    public static func map(_ x: Tensor, _ f: FloatMap) -> Tensor {
        let v = x.floats
        let out: [Float]
        switch f {
        case .exp: out = v.map { Foundation.expf($0) }
        case .log: out = v.map { Foundation.logf($0) }
        case .sqrt: out = v.map { $0.squareRoot() }
        case .rsqrt: out = v.map { 1 / $0.squareRoot() }
        case .tanh: out = v.map { Foundation.tanhf($0) }
        case .sin: out = v.map { Foundation.sinf($0) }
        case .cos: out = v.map { Foundation.cosf($0) }
        case .sigmoid: out = v.map { Float(1 / (1 + Foundation.exp(-Double($0)))) }
        case .gelu: out = v.map { Float(0.5 * Double($0) * (1 + Foundation.erf(Double($0) / 2.0.squareRoot()))) }
        case .gelu_tanh:
            out = v.map { x in
                let d = Double(x)
                return Float(0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d))))
            }
        }
        return Tensor(shape: x.shape, floats: out)
    }

    /// `clamp(x, min, max)`: a float bound on an integer tensor gives floats (torch's promotion).
    public static func clamp(_ x: Tensor, min lo: Double?, max hi: Double?, floatBounds: Bool) -> Tensor {
        if x.dtype == .float32 || floatBounds {
            let (l, h) = (lo.map(Float.init), hi.map(Float.init))
            return Tensor(shape: x.shape, floats: x.floats.map { v in
                if v.isNaN { return v }
                var r = v
                if let l, r < l { r = l }
                if let h, r > h { r = h }
                return r
            })
        }
        let (l, h) = (lo.map { Int64($0) }, hi.map { Int64($0) })
        return Tensor(shape: x.shape, ints: x.int64s.map { v in
            var r = v
            if let l, r < l { r = l }
            if let h, r > h { r = h }
            return r
        })
    }

    /// `where(condition, a, b)`.
    public static func select(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        let shape = try broadcastShape(condition.shape, try broadcastShape(a.shape, b.shape))
        let c = try condition.expanded(to: shape).bools
        let dtype = resultType(a.type, b.type)
        let x = try a.expanded(to: shape), y = try b.expanded(to: shape)
        switch dtype {
        case .float32:
            let (u, v) = (x.floats, y.floats)
            return Tensor(shape: shape, floats: c.indices.map { c[$0] ? u[$0] : v[$0] })
        case .int64:
            let (u, v) = (x.int64s, y.int64s)
            return Tensor(shape: shape, ints: c.indices.map { c[$0] ? u[$0] : v[$0] })
        case .bool:
            let (u, v) = (x.bools, y.bools)
            return Tensor(shape: shape, bools: c.indices.map { c[$0] ? u[$0] : v[$0] })
        }
    }

    /// A tensor of `shape` filled with `value`.
    public static func full(_ shape: [Int], _ value: Double, _ dtype: DType) throws(OpError) -> Tensor {
        let n = try elementCount(shape)
        guard n <= 1 << 26 else { throw OpError("a tensor of shape \(shape) is too large to create in a trace") }
        switch dtype {
        case .float32: return Tensor(shape: shape, floats: [Float](repeating: Float(value), count: n))
        case .int64: return Tensor(shape: shape, ints: [Int64](repeating: Int64(value), count: n))
        case .bool: return Tensor(shape: shape, bools: [Bool](repeating: value != 0, count: n))
        }
    }

    /// `arange(start, end, step)`.
    public static func arange(_ start: Double, _ end: Double, _ step: Double, _ dtype: DType) throws(OpError) -> Tensor {
        guard step != 0 else { throw OpError("arange: step must be nonzero") }
        let length = ((end - start) / step).rounded(.up)
        guard length.isFinite, length <= Double(1 << 26) else { throw OpError("arange: too many elements") }
        let n = Swift.max(0, Int(length))
        let values = (0..<n).map { start + Double($0) * step }
        switch dtype {
        case .float32: return Tensor(shape: [n], floats: values.map(Float.init))
        case .int64: return Tensor(shape: [n], ints: values.map { Int64($0) })
        case .bool: throw OpError("arange does not make bool tensors")
        }
    }
}
