import Foundation

/// Kernels that work along one dim ("lanes"): statistics, min, all/any, sort, topk, log-softmax,
/// cosine similarity. A lane of `x` along `dim` is the `size` elements at `(o * size + k) * inner + i`.
extension Kernels {
    public enum LaneStat: String, Sendable, CaseIterable { case min, argmin, std, varr = "var", norm, all, any, prod }

    /// NaN sorts above every number (torch's rule for max, sort and topk).
    static func greater(_ a: Double, _ b: Double) -> Bool {
        if a.isNaN { return !b.isNaN }
        if b.isNaN { return false }
        return a > b
    }

    /// Reduces every lane with `f` (all elements when `dim` is nil).
    static func reduceLanes(_ x: Tensor, dim: Int?, keepdim: Bool, _ f: ([Double]) throws(OpError) -> Double)
        throws(OpError) -> (shape: [Int], values: [Double]) {
        let shape = try reducedShape(x.shape, dim: dim, keepdim: keepdim)
        let (outer, size, inner) = try split(x.shape, dim: dim)
        let v = x.doubles
        var out = [Double](repeating: 0, count: outer * inner)
        var lane = [Double](repeating: 0, count: size)
        for o in 0..<outer {
            for i in 0..<inner {
                for k in 0..<size { lane[k] = v[(o * size + k) * inner + i] }
                out[o * inner + i] = try f(lane)
            }
        }
        return (shape, out)
    }

    /// The dtype of a lane statistic of `x`.
    public static func statType(_ stat: LaneStat, _ x: DType) throws(OpError) -> DType {
        switch stat {
        case .min: return x
        case .argmin: return .int64
        case .all, .any: return .bool
        case .prod: return x == .bool ? .int64 : x
        case .std, .varr, .norm:
            guard x == .float32 else { throw OpError("\(stat.rawValue)(): input dtype should be floating point, got \(x)") }
            return .float32
        }
    }

    public static func laneStat(_ x: Tensor, _ stat: LaneStat, dim: Int?, keepdim: Bool, correction: Int = 1, p: Double = 2) throws(OpError) -> Tensor {
        let dtype = try statType(stat, x.dtype)
        let (shape, values) = try reduceLanes(x, dim: dim, keepdim: keepdim) { (lane) throws(OpError) -> Double in
            switch stat {
            case .min, .argmin:
                guard !lane.isEmpty else { throw OpError("\(stat.rawValue)(): cannot reduce an empty dimension") }
                var best = lane[0], at = 0
                for k in lane.indices.dropFirst() where best.isNaN == false && (lane[k].isNaN || lane[k] < best) {
                    best = lane[k]
                    at = k
                }
                return stat == .min ? best : Double(at)
            case .all: return lane.allSatisfy { $0 != 0 } ? 1 : 0
            case .any: return lane.contains { $0 != 0 } ? 1 : 0
            case .prod: return lane.reduce(1, *)
            case .norm:
                if p == .infinity { return lane.map(Swift.abs).max() ?? 0 }
                if p == 1 { return lane.reduce(0) { $0 + Swift.abs($1) } }
                return Foundation.pow(lane.reduce(0) { $0 + Foundation.pow(Swift.abs($1), p) }, 1 / p)
            case .std, .varr:
                let mean = lane.reduce(0, +) / Double(lane.count)
                let ss = lane.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
                let v = ss / Double(Swift.max(0, lane.count - correction))
                return stat == .std ? v.squareRoot() : v
            }
        }
        switch dtype {
        case .float32: return Tensor(shape: shape, floats: values.map(Float.init))
        case .int64: return Tensor(shape: shape, ints: values.map { Int64($0) })
        case .bool: return Tensor(shape: shape, bools: values.map { $0 != 0 })
        }
    }

    /// Rewrites every lane along `dim` into `newSize` values and indices (sort, topk).
    static func mapLanes(_ x: Tensor, dim: Int, newSize: Int, _ f: ([Double]) -> [Int]) throws(OpError) -> (Tensor, Tensor) {
        let d = x.shape.isEmpty ? 0 : try normalize(dim: dim, rank: x.rank)
        let shape = x.shape.isEmpty ? [1] : x.shape
        let (outer, size, inner) = (shape[..<d].reduce(1, *), shape[d], shape[(d + 1)...].reduce(1, *))
        var outShape = x.shape
        if !outShape.isEmpty { outShape[d] = newSize }
        let v = x.doubles
        var values = [Double](repeating: 0, count: outer * newSize * inner), indices = [Int64](repeating: 0, count: values.count)
        var lane = [Double](repeating: 0, count: size)
        for o in 0..<outer {
            for i in 0..<inner {
                for k in 0..<size { lane[k] = v[(o * size + k) * inner + i] }
                for (j, k) in f(lane).prefix(newSize).enumerated() {
                    values[(o * newSize + j) * inner + i] = lane[k]
                    indices[(o * newSize + j) * inner + i] = Int64(k)
                }
            }
        }
        let t: Tensor = switch x.dtype {
        case .float32: Tensor(shape: outShape, floats: values.map(Float.init))
        case .int64: Tensor(shape: outShape, ints: values.map { Int64($0) })
        case .bool: Tensor(shape: outShape, bools: values.map { $0 != 0 })
        }
        return (t, Tensor(shape: outShape, ints: indices))
    }

    /// The lane order: stable, NaN largest.
    static func order(_ lane: [Double], descending: Bool) -> [Int] {
        lane.indices.sorted { a, b in
            if descending { return greater(lane[a], lane[b]) || (!greater(lane[b], lane[a]) && a < b) }
            return greater(lane[b], lane[a]) || (!greater(lane[a], lane[b]) && a < b)
        }
    }

    public static func sort(_ x: Tensor, dim: Int, descending: Bool) throws(OpError) -> (Tensor, Tensor) {
        let size = x.shape.isEmpty ? 1 : x.shape[try normalize(dim: dim, rank: x.rank)]
        return try mapLanes(x, dim: dim, newSize: size) { order($0, descending: descending) }
    }

    public static func topkShape(_ shape: [Int], k: Int, dim: Int) throws(OpError) -> [Int] {
        let d = try normalize(dim: dim, rank: shape.count)
        let size = shape.isEmpty ? 1 : shape[d]
        guard k >= 0, k <= size else { throw OpError("selected index k out of range (k = \(k), dimension \(dim) has size \(size))") }
        var out = shape
        if !out.isEmpty { out[d] = k }
        return out
    }

    public static func topk(_ x: Tensor, k: Int, dim: Int, largest: Bool) throws(OpError) -> (Tensor, Tensor) {
        _ = try topkShape(x.shape, k: k, dim: dim)
        return try mapLanes(x, dim: dim, newSize: k) { order($0, descending: largest) }
    }

    /// log(softmax(x)) computed stably: x - max - log(sum(exp(x - max))).
    public static func logSoftmax(_ x: Tensor, dim: Int) throws(OpError) -> Tensor {
        if x.shape.isEmpty { _ = try normalize(dim: dim, rank: 0) }
        let (outer, size, inner) = try split(x.shape, dim: x.shape.isEmpty ? nil : dim)
        var v = x.floats
        for o in 0..<outer {
            for i in 0..<inner {
                var m = -Float.infinity
                for k in 0..<size { m = Swift.max(m, v[(o * size + k) * inner + i]) }
                var s = 0.0
                for k in 0..<size { s += Foundation.exp(Double(v[(o * size + k) * inner + i] - m)) }
                let l = Float(Foundation.log(s))
                for k in 0..<size {
                    let j = (o * size + k) * inner + i
                    v[j] = v[j] - m - l
                }
            }
        }
        return Tensor(shape: x.shape, floats: v)
    }

    public static func cosineSimilarityShape(_ a: [Int], _ b: [Int], dim: Int) throws(OpError) -> [Int] {
        let shape = try broadcastShape(a, b)
        return try reducedShape(shape, dim: dim, keepdim: false)
    }

    /// `x1·x2 / max(|x1| |x2|, eps)` along `dim`.
    public static func cosineSimilarity(_ a: Tensor, _ b: Tensor, dim: Int, eps: Double) throws(OpError) -> Tensor {
        let shape = try broadcastShape(a.shape, b.shape)
        let outShape = try reducedShape(shape, dim: dim, keepdim: false)
        let (outer, size, inner) = try split(shape, dim: dim)
        let u = try a.expanded(to: shape).doubles, v = try b.expanded(to: shape).doubles
        var out = [Float](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                var dot = 0.0, n1 = 0.0, n2 = 0.0
                for k in 0..<size {
                    let j = (o * size + k) * inner + i
                    dot += u[j] * v[j]
                    n1 += u[j] * u[j]
                    n2 += v[j] * v[j]
                }
                out[o * inner + i] = Float(dot / Swift.max((n1 * n2).squareRoot(), eps))
            }
        }
        return Tensor(shape: outShape, floats: out)
    }
}
