/// Products: `matmul` (torch's broadcasting rules for 1-D and batched operands) and `einsum`.
/// Sums accumulate in double and round once, which stays within float32 noise of BLAS.
extension Kernels {
    /// The result shape of `a @ b`.
    public static func matmulShape(_ a: [Int], _ b: [Int]) throws(OpError) -> [Int] {
        guard !a.isEmpty, !b.isEmpty else { throw OpError("both arguments to matmul need to be at least 1D, but they are \(a.count)D and \(b.count)D") }
        let x = a.count == 1 ? [1] + a : a, y = b.count == 1 ? b + [1] : b
        guard x[x.count - 1] == y[y.count - 2] else {
            let shown = { (s: [Int]) in s.count <= 2 ? s.map(String.init).joined(separator: "x") : "\(s)" }
            throw OpError("mat1 and mat2 shapes cannot be multiplied (\(shown(a.count == 1 ? [1] + a : Array(a.suffix(2)))) and \(shown(b.count == 1 ? b + [1] : Array(b.suffix(2)))))")
        }
        var out = try broadcastShape(Array(x.dropLast(2)), Array(y.dropLast(2))) + [x[x.count - 2], y[y.count - 1]]
        if b.count == 1 { out.removeLast() }
        if a.count == 1 { out.remove(at: out.count - (b.count == 1 ? 1 : 2)) }
        return out
    }

    public static func matmul(_ a: Tensor, _ b: Tensor) throws(OpError) -> Tensor {
        let outShape = try matmulShape(a.shape, b.shape)
        let x = a.rank == 1 ? try a.indexed([.newAxis, .ellipsis]) : a
        let y = b.rank == 1 ? try b.indexed([.ellipsis, .newAxis]) : b
        let (n, k, m) = (x.shape[x.rank - 2], x.shape[x.rank - 1], y.shape[y.rank - 1])
        let batch = try broadcastShape(Array(x.shape.dropLast(2)), Array(y.shape.dropLast(2)))
        let u = try x.expanded(to: batch + [n, k]).doubles, v = try y.expanded(to: batch + [k, m]).doubles
        let count = batch.reduce(1, *)
        var out = [Double](repeating: 0, count: count * n * m)
        for p in 0..<count {
            let (ua, vb, o) = (p * n * k, p * k * m, p * n * m)
            for i in 0..<n {
                for j in 0..<m {
                    var s = 0.0
                    for t in 0..<k { s += u[ua + i * k + t] * v[vb + t * m + j] }
                    out[o + i * m + j] = s
                }
            }
        }
        if a.dtype == .float32 || b.dtype == .float32 { return Tensor(shape: outShape, floats: out.map(Float.init)) }
        return Tensor(shape: outShape, ints: out.map { Int64($0) })
    }

    /// A parsed einsum equation: each operand's subscripts and the output's.
    public struct Einsum: Sendable {
        public var inputs: [[Character]]
        public var output: [Character]

        public init(_ equation: String, operands: Int) throws(OpError) {
            let text = equation.filter { $0 != " " }
            let sides = text.components(separatedBy: "->")
            guard sides.count <= 2 else { throw OpError("einsum(): invalid equation '\(equation)'") }
            inputs = sides[0].split(separator: ",", omittingEmptySubsequences: false).map(Array.init)
            guard inputs.count == operands else {
                throw OpError("einsum(): more operands were provided than specified in the equation")
            }
            for s in inputs + (sides.count == 2 ? [Array(sides[1])] : []) where s.contains(where: { !$0.isLetter }) {
                throw OpError("einsum(): only letter subscripts are supported (no '...'), got '\(equation)'")
            }
            if sides.count == 2 {
                output = Array(sides[1])
            } else {
                let all = inputs.joined()
                output = Set(all).filter { c in all.filter { $0 == c }.count == 1 }.sorted()
            }
            guard Set(output).count == output.count, output.allSatisfy({ c in inputs.contains { $0.contains(c) } }) else {
                throw OpError("einsum(): output subscripts of '\(equation)' must appear once each and in an input")
            }
        }

        /// The size of every subscript, checked against the operands' shapes.
        public func sizes(_ shapes: [[Int]]) throws(OpError) -> [Character: Int] {
            var sizes: [Character: Int] = [:]
            for (subscripts, shape) in zip(inputs, shapes) {
                guard subscripts.count == shape.count else {
                    throw OpError("einsum(): the number of subscripts in the equation (\(subscripts.count)) does not match the number of dimensions (\(shape.count)) for operand \(shape)")
                }
                for (c, n) in zip(subscripts, shape) {
                    if let known = sizes[c], known != n {
                        throw OpError("einsum(): operands do not broadcast with remapped shapes: subscript '\(c)' has size \(known) and \(n)")
                    }
                    sizes[c] = n
                }
            }
            return sizes
        }

        public func shape(_ shapes: [[Int]]) throws(OpError) -> [Int] {
            let s = try sizes(shapes)
            return output.map { s[$0]! }
        }
    }

    public static func einsum(_ equation: String, _ xs: [Tensor]) throws(OpError) -> Tensor {
        let e = try Einsum(equation, operands: xs.count)
        let sizes = try e.sizes(xs.map(\.shape))
        let letters = e.output + sizes.keys.filter { !e.output.contains($0) }.sorted()
        let extent = letters.map { sizes[$0]! }
        guard extent.reduce(1, { $0 * Swift.max($1, 1) }) <= 1 << 30 else { throw OpError("einsum(): the product is too large") }
        let data = xs.map(\.doubles)
        // Each operand's stride per letter of the loop.
        let strides: [[Int]] = xs.indices.map { i in
            let s = Tensor.contiguousStrides(xs[i].shape)
            return letters.map { c in zip(e.inputs[i], s).filter { $0.0 == c }.reduce(0) { $0 + $1.1 } }
        }
        let outCount = e.output.reduce(1) { $0 * sizes[$1]! }
        var out = [Double](repeating: 0, count: outCount)
        let total = extent.reduce(1, *)
        let reduced = total / Swift.max(outCount, 1)
        guard total > 0 else { return Tensor(shape: try e.shape(xs.map(\.shape)), floats: out.map(Float.init)) }
        try forEachCoordinate(extent) { (counter, flat) throws(OpError) in
            var product = 1.0
            for i in xs.indices { product *= data[i][flatOffset(counter, strides[i])] }
            out[flat / Swift.max(reduced, 1)] += product
        }
        let shape = try e.shape(xs.map(\.shape))
        if xs.contains(where: { $0.dtype == .float32 }) { return Tensor(shape: shape, floats: out.map(Float.init)) }
        return Tensor(shape: shape, ints: out.map { Int64($0) })
    }
}
