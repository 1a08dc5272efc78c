import Foundation
import Wire

/// A value of the intervention graph: a dense row-major tensor, float32 or int64, with the small
/// set of operations a trace may ask for (torch semantics: negative indices, broadcasting,
/// reductions along a dim).
public struct NDArray: Equatable, Sendable {
    public enum DType: Sendable { case float32, int64 }

    public var shape: [Int]
    public var dtype: DType
    /// Elements as doubles: exact for float32 and for int64 ids below 2^53.
    public var data: [Double]

    public init(shape: [Int], dtype: DType = .float32, data: [Double]) {
        precondition(shape.reduce(1, *) == data.count)
        self.shape = shape
        self.dtype = dtype
        self.data = data
    }

    public init(floats: UnsafeBufferPointer<Float>, shape: [Int]) {
        self.init(shape: shape, data: floats.map(Double.init))
    }

    public static func scalar(_ value: Double, dtype: DType = .float32) -> NDArray {
        NDArray(shape: [], dtype: dtype, data: [value])
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    public init(_ host: HostTensor) {
        switch host.storage {
        case let .float32(v): self.init(shape: host.shape, dtype: .float32, data: v.map(Double.init))
        case let .int64(v): self.init(shape: host.shape, dtype: .int64, data: v.map(Double.init))
        }
    }

    public var host: HostTensor {
        switch dtype {
        case .float32: HostTensor(shape: shape, floats: data.map { Float($0) })
        case .int64: HostTensor(shape: shape, ints: data.map { Int64($0) })
        }
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = s
            s *= shape[d]
        }
        return strides
    }
}

/// Why an operation could not run; the interpreter adds the node and step.
public struct TensorError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ message: String) { description = message }
}

// MARK: - indexing

/// One element of an index expression.
public enum IndexItem: Equatable, Sendable {
    case at(Int)
    case slice(start: Int?, stop: Int?, step: Int?)
    case ellipsis
    case newAxis

    public static let all = IndexItem.slice(start: nil, stop: nil, step: nil)
}

extension NDArray {
    /// For each output dim, the source dim's positions (nil dim = new axis); `keep[d]` false for
    /// dims removed by an integer index. Returns (output shape, flat source offsets).
    static func resolve(_ items: [IndexItem], shape: [Int]) throws(TensorError) -> (shape: [Int], offsets: [Int]) {
        let explicit = items.filter { $0 != .ellipsis && $0 != .newAxis }.count
        guard explicit <= shape.count else {
            throw TensorError("too many indices for tensor of dimension \(shape.count)")
        }
        guard items.filter({ $0 == .ellipsis }).count <= 1 else { throw TensorError("an index can only have a single ellipsis") }
        var expanded: [IndexItem] = []
        for item in items {
            if item == .ellipsis {
                expanded += [IndexItem](repeating: .all, count: shape.count - explicit)
            } else {
                expanded.append(item)
            }
        }
        let consumed = expanded.filter { $0 != .newAxis }.count
        expanded += [IndexItem](repeating: .all, count: shape.count - consumed)

        // Per source dim: chosen positions, and whether the dim stays.
        var outShape: [Int] = []
        var perDim: [(positions: [Int], stride: Int)] = []
        let strides = NDArray.strides(shape)
        var d = 0
        for item in expanded {
            switch item {
            case .newAxis:
                outShape.append(1)
            case let .at(i):
                let size = shape[d]
                let p = i < 0 ? i + size : i
                guard p >= 0, p < size else {
                    throw TensorError("index \(i) is out of bounds for dimension \(d) with size \(size)")
                }
                perDim.append(([p], strides[d]))
                d += 1
            case let .slice(start, stop, step):
                let size = shape[d]
                let st = step ?? 1
                guard st > 0 else { throw TensorError("slice step must be positive") }
                func clamp(_ v: Int?, _ fallback: Int) -> Int {
                    guard let v else { return fallback }
                    let p = v < 0 ? v + size : v
                    return min(max(p, 0), size)
                }
                let lo = clamp(start, 0), hi = clamp(stop, size)
                let positions = lo < hi ? Array(stride(from: lo, to: hi, by: st)) : []
                perDim.append((positions, strides[d]))
                outShape.append(positions.count)
                d += 1
            case .ellipsis:
                break
            }
        }
        // Offsets: cartesian product over per-dim positions, row-major.
        var offsets = [0]
        for (positions, stride) in perDim {
            var next: [Int] = []
            next.reserveCapacity(offsets.count * positions.count)
            for base in offsets { for p in positions { next.append(base + p * stride) } }
            offsets = next
        }
        return (outShape, offsets)
    }

    public func indexed(_ items: [IndexItem]) throws(TensorError) -> NDArray {
        let (outShape, offsets) = try NDArray.resolve(items, shape: shape)
        return NDArray(shape: outShape, dtype: dtype, data: offsets.map { data[$0] })
    }

    /// `self[items] = value` with broadcasting of `value` to the indexed shape.
    public mutating func assign(_ items: [IndexItem], _ value: NDArray) throws(TensorError) {
        let (outShape, offsets) = try NDArray.resolve(items, shape: shape)
        let source = try value.broadcast(to: outShape)
        for (i, o) in offsets.enumerated() { data[o] = source.data[i] }
    }

    /// Flat offsets of `items` in a tensor of `shape`: for writing into live buffers.
    public static func offsets(_ items: [IndexItem], shape: [Int]) throws(TensorError) -> (shape: [Int], offsets: [Int]) {
        try resolve(items, shape: shape)
    }
}

// MARK: - broadcasting arithmetic

public enum BinaryOp: Sendable { case add, sub, mul, div }

extension NDArray {
    static func broadcastShape(_ a: [Int], _ b: [Int]) throws(TensorError) -> [Int] {
        let rank = max(a.count, b.count)
        var out = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let x = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let y = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            guard x == y || x == 1 || y == 1 else {
                throw TensorError("shapes \(a) and \(b) cannot be broadcast together")
            }
            out[i] = max(x, y)
        }
        return out
    }

    public func broadcast(to target: [Int]) throws(TensorError) -> NDArray {
        if shape == target { return self }
        guard (try? NDArray.broadcastShape(shape, target)) == target else {
            throw TensorError("cannot broadcast shape \(shape) to \(target)")
        }
        let rank = target.count
        let padded = [Int](repeating: 1, count: rank - shape.count) + shape
        let sourceStrides = NDArray.strides(padded).enumerated().map { padded[$0.offset] == 1 ? 0 : $0.element }
        let count = target.reduce(1, *)
        var out = [Double](repeating: 0, count: count)
        let targetStrides = NDArray.strides(target)
        for i in 0..<count {
            var rest = i, src = 0
            for d in 0..<rank {
                let coordinate = rest / targetStrides[d]
                rest %= targetStrides[d]
                src += coordinate * sourceStrides[d]
            }
            out[i] = data[src]
        }
        return NDArray(shape: target, dtype: dtype, data: out)
    }

    public func combined(_ op: BinaryOp, _ other: NDArray) throws(TensorError) -> NDArray {
        let outShape = try NDArray.broadcastShape(shape, other.shape)
        let a = try broadcast(to: outShape), b = try other.broadcast(to: outShape)
        let dtype: DType = (self.dtype == .int64 && other.dtype == .int64 && op != .div) ? .int64 : .float32
        var out = [Double](repeating: 0, count: a.count)
        for i in 0..<out.count {
            let (x, y) = (a.data[i], b.data[i])
            switch op {
            case .add: out[i] = x + y
            case .sub: out[i] = x - y
            case .mul: out[i] = x * y
            case .div: out[i] = x / y
            }
        }
        // float32 results are rounded to float32, as torch computes them.
        if dtype == .float32 { for i in 0..<out.count { out[i] = Double(Float(out[i])) } }
        return NDArray(shape: outShape, dtype: dtype, data: out)
    }

    public func mapped(_ f: (Double) -> Double) -> NDArray {
        NDArray(shape: shape, dtype: dtype, data: data.map(f))
    }
}

// MARK: - reductions

public enum Reduction: Sendable { case sum, mean, max, argmax, softmax }

extension NDArray {
    /// Reduces along `dim` (all elements when nil); softmax keeps the shape.
    public func reduced(_ reduction: Reduction, dim: Int?, keepdim: Bool = false) throws(TensorError) -> NDArray {
        guard let dim else {
            guard !data.isEmpty else { throw TensorError("reduction of an empty tensor") }
            switch reduction {
            case .sum: return .scalar(Double(Float(data.reduce(0, +))), dtype: dtype)
            case .mean: return .scalar(Double(Float(data.reduce(0, +) / Double(data.count))))
            case .max: return .scalar(data.max()!, dtype: dtype)
            case .argmax: return .scalar(Double(data.firstIndex(of: data.max()!)!), dtype: .int64)
            case .softmax: throw TensorError("softmax needs a dim")
            }
        }
        guard rank > 0 else { throw TensorError("dimension specified as \(dim) but tensor has no dimensions") }
        let d = dim < 0 ? dim + rank : dim
        guard d >= 0, d < rank else {
            throw TensorError("dimension out of range (expected to be in range of [\(-rank), \(rank - 1)], but got \(dim))")
        }
        let outer = shape[..<d].reduce(1, *), size = shape[d], inner = shape[(d + 1)...].reduce(1, *)
        if reduction == .softmax {
            var out = data
            for o in 0..<outer {
                for i in 0..<inner {
                    let idx = (0..<size).map { (o * size + $0) * inner + i }
                    let m = idx.map { data[$0] }.max() ?? 0
                    let e = idx.map { Double(Float(exp(data[$0] - m))) }
                    let s = e.reduce(0, +)
                    for (k, j) in idx.enumerated() { out[j] = Double(Float(e[k] / s)) }
                }
            }
            return NDArray(shape: shape, dtype: .float32, data: out)
        }
        var out = [Double](repeating: 0, count: outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let values = (0..<size).map { data[(o * size + $0) * inner + i] }
                switch reduction {
                case .sum: out[o * inner + i] = Double(Float(values.reduce(0, +)))
                case .mean: out[o * inner + i] = Double(Float(values.reduce(0, +) / Double(size)))
                case .max: out[o * inner + i] = values.max() ?? 0
                case .argmax: out[o * inner + i] = Double(values.firstIndex(of: values.max()!)!)
                case .softmax: break
                }
            }
        }
        var outShape = shape
        if keepdim { outShape[d] = 1 } else { outShape.remove(at: d) }
        let outType: DType = reduction == .argmax ? .int64 : (reduction == .mean ? .float32 : dtype)
        return NDArray(shape: outShape, dtype: outType, data: out)
    }
}
