/// Element types of graph values.
public enum DType: String, Sendable, Equatable {
    case float32, int64, bool

    /// Bytes per element in memory.
    public var byteWidth: Int {
        switch self {
        case .float32: 4
        case .int64: 8
        case .bool: 1
        }
    }

    /// torch's type-promotion category: bool < integer < floating.
    var category: Int {
        switch self {
        case .bool: 0
        case .int64: 1
        case .float32: 2
        }
    }
}

/// Where a tensor's elements live: its own typed array, or (inside a hook only) the Engine's live
/// buffer, which the interpreter copies before the hook returns if the value outlives it.
public enum TensorStorage {
    case float32([Float])
    case int64([Int64])
    case bool([Bool])
    case liveFloats(UnsafeMutableBufferPointer<Float>)
    case liveIds(UnsafeMutableBufferPointer<Int32>)
}

/// A value of the intervention graph: typed storage (float32, int64, bool), a shape and strides.
/// Indexing and broadcasting make views (no copy); kernels read through `contiguous()`.
///
/// ```swift
/// let x = Tensor(shape: [2, 3], floats: [0, 1, 2, 3, 4, 5])
/// let row = try x.indexed([.at(-1)])          // view: [3, 4, 5]
/// let y = try Ops.binary(.add, x, .scalar(Float(1)))
/// ```
///
/// `@unchecked Sendable`: a tensor over a live buffer never leaves the interpreter's hook visit
/// (it is copied first); every other tensor owns immutable arrays.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public let shape: [Int]
    public let strides: [Int]
    public let offset: Int
    public let storage: TensorStorage

    public init(shape: [Int], strides: [Int], offset: Int, storage: TensorStorage) {
        self.shape = shape
        self.strides = strides
        self.offset = offset
        self.storage = storage
    }

    init(shape: [Int], storage: TensorStorage) {
        self.init(shape: shape, strides: Tensor.contiguousStrides(shape), offset: 0, storage: storage)
    }

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.init(shape: shape, storage: .float32(floats))
    }

    public init(shape: [Int], ints: [Int64]) {
        precondition(shape.reduce(1, *) == ints.count, "shape \(shape) does not hold \(ints.count) values")
        self.init(shape: shape, storage: .int64(ints))
    }

    public init(shape: [Int], bools: [Bool]) {
        precondition(shape.reduce(1, *) == bools.count, "shape \(shape) does not hold \(bools.count) values")
        self.init(shape: shape, storage: .bool(bools))
    }

    public static func scalar(_ value: Float) -> Tensor { Tensor(shape: [], floats: [value]) }
    public static func scalar(_ value: Int64) -> Tensor { Tensor(shape: [], ints: [value]) }

    /// A view of a hook's live float buffer (valid during the hook only).
    public static func live(_ buffer: UnsafeMutableBufferPointer<Float>, shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: .liveFloats(buffer))
    }

    /// A view of a hook's live id buffer (valid during the hook only); reads as int64.
    public static func live(_ buffer: UnsafeMutableBufferPointer<Int32>, shape: [Int]) -> Tensor {
        Tensor(shape: shape, storage: .liveIds(buffer))
    }

    public var dtype: DType {
        switch storage {
        case .float32, .liveFloats: .float32
        case .int64, .liveIds: .int64
        case .bool: .bool
        }
    }

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    public var isLive: Bool {
        switch storage {
        case .liveFloats, .liveIds: true
        default: false
        }
    }

    /// Row-major without gaps (checked without building the contiguous strides).
    public var isContiguous: Bool {
        var expected = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            if shape[d] != 1, strides[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }

    /// Whether the storage array is exactly this tensor's elements (no view, no live buffer).
    private var ownsExactly: Bool {
        guard offset == 0, isContiguous else { return false }
        switch storage {
        case let .float32(a): return a.count == count
        case let .int64(a): return a.count == count
        case let .bool(a): return a.count == count
        case .liveFloats, .liveIds: return false
        }
    }

    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var s = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[d] = s
            s *= shape[d]
        }
        return strides
    }

    /// Calls `body` with the storage offset of every element, in row-major order of `shape`.
    @inline(__always)
    func forEachOffset(_ body: (Int) -> Void) {
        let n = count
        guard n > 0 else { return }
        if isContiguous {
            for i in 0..<n { body(offset + i) }
            return
        }
        let rank = shape.count
        var index = [Int](repeating: 0, count: rank)
        var position = offset
        for _ in 0..<n {
            body(position)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                position += strides[d]
                if index[d] < shape[d] { break }
                position -= strides[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
    }

    /// The elements as float32, row-major (ints and bools converted).
    public var floats: [Float] {
        if ownsExactly, case let .float32(a) = storage { return a }
        var out: [Float] = []
        out.reserveCapacity(count)
        switch storage {
        case let .float32(a): a.withUnsafeBufferPointer { p in forEachOffset { out.append(p[$0]) } }
        case let .liveFloats(p): forEachOffset { out.append(p[$0]) }
        case let .int64(a): forEachOffset { out.append(Float(a[$0])) }
        case let .liveIds(p): forEachOffset { out.append(Float(p[$0])) }
        case let .bool(a): forEachOffset { out.append(a[$0] ? 1 : 0) }
        }
        return out
    }

    /// The elements as int64, row-major (floats truncated toward zero, as torch's `.long()`).
    public var int64s: [Int64] {
        if ownsExactly, case let .int64(a) = storage { return a }
        var out: [Int64] = []
        out.reserveCapacity(count)
        switch storage {
        case let .int64(a): forEachOffset { out.append(a[$0]) }
        case let .liveIds(p): forEachOffset { out.append(Int64(p[$0])) }
        case let .float32(a): forEachOffset { out.append(Tensor.truncate(a[$0])) }
        case let .liveFloats(p): forEachOffset { out.append(Tensor.truncate(p[$0])) }
        case let .bool(a): forEachOffset { out.append(a[$0] ? 1 : 0) }
        }
        return out
    }

    /// The elements as bools, row-major (nonzero is true).
    public var bools: [Bool] {
        switch storage {
        case let .bool(a):
            if ownsExactly { return a }
            var out: [Bool] = []
            out.reserveCapacity(count)
            forEachOffset { out.append(a[$0]) }
            return out
        default:
            return dtype == .float32 ? floats.map { $0 != 0 } : int64s.map { $0 != 0 }
        }
    }

    static func truncate(_ x: Float) -> Int64 {
        guard x.isFinite else { return x.isNaN ? 0 : (x > 0 ? Int64.max : Int64.min) }
        guard x < 9.2e18, x > -9.2e18 else { return x > 0 ? Int64.max : Int64.min }
        return Int64(x)
    }

    /// The elements as integers (token ids).
    public var ints: [Int] { int64s.map { Int($0) } }
    /// The elements as doubles (exact for float32, and for int64 below 2^53).
    public var doubles: [Double] { dtype == .float32 ? floats.map(Double.init) : int64s.map(Double.init) }

    /// A contiguous tensor that owns its elements (self when it already is one).
    public func contiguous() -> Tensor {
        if ownsExactly { return self }
        switch dtype {
        case .float32: return Tensor(shape: shape, floats: floats)
        case .int64: return Tensor(shape: shape, ints: int64s)
        case .bool: return Tensor(shape: shape, bools: bools)
        }
    }

    /// The tensor converted to `dtype` (a copy unless it has that type already).
    public func converted(to target: DType) -> Tensor {
        guard target != dtype else { return self }
        switch target {
        case .float32: return Tensor(shape: shape, floats: floats)
        case .int64: return Tensor(shape: shape, ints: int64s)
        case .bool: return Tensor(shape: shape, bools: bools)
        }
    }

    /// Row `i` of the first dim, as nnsight's `output[0]`.
    public subscript(_ i: Int) -> Tensor {
        get throws(OpError) { try indexed([.at(i)]) }
    }

    public var description: String { "Tensor(\(dtype), shape: \(shape))" }
}

extension Tensor: Equatable {
    /// Same shape, dtype and elements (NaN equals NaN here, so that saved values compare).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.shape == b.shape, a.dtype == b.dtype else { return false }
        switch a.dtype {
        case .float32: return zip(a.floats, b.floats).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
        case .int64: return a.int64s == b.int64s
        case .bool: return a.bools == b.bools
        }
    }
}

/// Why an operation could not run or type-check; the interpreter and the compiler add the node,
/// step, module and script position.
public struct OpError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    /// The op was refused before it ran: its output or work is over a budget (`OpBudget`).
    public let isOverBudget: Bool
    /// The exception torch raises for it (`IndexError` for an index out of bounds), nil where
    /// the front end's own choice stands.
    public let exception: PythonException?
    public init(_ message: String, overBudget: Bool = false, exception: PythonException? = nil) {
        description = message
        isOverBudget = overBudget
        self.exception = exception
    }
}

/// The Python exception class an error surfaces as in a script.
public enum PythonException: String, Sendable, Equatable {
    case indexError = "IndexError"
}
