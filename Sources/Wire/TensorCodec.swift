import Foundation

/// A decoded, validated tensor: a shape and contiguous row-major storage.
///
/// ```swift
/// let hidden = HostTensor(shape: [1, 1, 768], floats: values)
/// let wire = hidden.wire                       // protobuf Tensor, raw little-endian bytes
/// let back = try HostTensor(wire)              // validated: bytes == shape x dtype
/// ```
public struct HostTensor: Equatable, Sendable {
    public enum Storage: Equatable, Sendable {
        case float32([Float])
        case int64([Int64])
    }

    public var shape: [Int]
    public var storage: Storage

    public init(shape: [Int], floats: [Float]) {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        self.shape = shape
        storage = .float32(floats)
    }

    public init(shape: [Int], ints: [Int64]) {
        precondition(shape.reduce(1, *) == ints.count, "shape \(shape) does not hold \(ints.count) values")
        self.shape = shape
        storage = .int64(ints)
    }

    public var count: Int { shape.reduce(1, *) }

    /// Bounds on decoded tensors.
    public struct Limits: Sendable {
        public var maxRank = 8
        public var maxBytes = WireProtocol.defaultMaxMessageBytes
        public init() {}
    }

    /// Checks a wire tensor's rank, size and byte count against its dtype (float32, int64 or
    /// bool) without decoding it.
    public static func validate(_ tensor: Nnsight_V1_Tensor, limits: Limits = Limits()) throws(WireError) {
        guard tensor.shape.count <= limits.maxRank else {
            throw .invalidTensor("rank \(tensor.shape.count) exceeds \(limits.maxRank)")
        }
        var count = 1
        for d in tensor.shape {
            guard d >= 0, d <= Int64(limits.maxBytes) else { throw .invalidTensor("dimension \(d) in shape \(tensor.shape)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= limits.maxBytes else { throw .invalidTensor("shape \(tensor.shape) is too large") }
            count = product
        }
        let size: Int
        switch tensor.dtype {
        case .float32: size = 4
        case .int64: size = 8
        case .bool: size = 1
        default: throw .invalidTensor("unsupported dtype \(tensor.dtype)")
        }
        guard tensor.data.count == count * size else {
            throw .invalidTensor("shape \(tensor.shape) of \(tensor.dtype) needs \(count * size) bytes, got \(tensor.data.count)")
        }
    }

    /// Decodes and validates a wire tensor: one copy, no per-element work.
    public init(_ tensor: Nnsight_V1_Tensor, limits: Limits = Limits()) throws(WireError) {
        try Self.validate(tensor, limits: limits)
        guard tensor.dtype == .float32 || tensor.dtype == .int64 else { throw .invalidTensor("unsupported dtype \(tensor.dtype) for a host tensor") }
        let count = tensor.shape.reduce(1) { $0 * Int($1) }
        shape = tensor.shape.map { Int($0) }
        switch tensor.dtype {
        case .float32:
            storage = .float32([Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                _ = tensor.data.copyBytes(to: buffer)
                initialized = count
            })
        default:
            storage = .int64([Int64](unsafeUninitializedCapacity: count) { buffer, initialized in
                _ = tensor.data.copyBytes(to: buffer)
                initialized = count
            })
        }
    }

    /// The wire form: raw little-endian bytes (one copy).
    public var wire: Nnsight_V1_Tensor {
        var tensor = Nnsight_V1_Tensor()
        tensor.shape = shape.map { Int64($0) }
        switch storage {
        case let .float32(values):
            return values.withUnsafeBufferPointer { Self.wire(floats: $0, shape: shape) }
        case let .int64(values):
            tensor.dtype = .int64
            tensor.data = values.withUnsafeBytes { Data($0) }
        }
        return tensor
    }
}

extension HostTensor {
    /// The wire form of floats that live elsewhere (an activation buffer): one copy, straight
    /// into the message's bytes.
    public static func wire(floats: UnsafeBufferPointer<Float>, shape: [Int]) -> Nnsight_V1_Tensor {
        precondition(shape.reduce(1, *) == floats.count, "shape \(shape) does not hold \(floats.count) values")
        var tensor = Nnsight_V1_Tensor()
        tensor.shape = shape.map { Int64($0) }
        tensor.dtype = .float32
        tensor.data = Data(buffer: floats)
        return tensor
    }
}

// The codec copies host memory as is: little-endian hosts only (x86-64, arm64).
#if _endian(big)
#error("the tensor codec assumes a little-endian host")
#endif
