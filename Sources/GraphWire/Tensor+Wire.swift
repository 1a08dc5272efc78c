import Foundation
import Graph
import Wire

extension Tensor {
    /// Decodes and validates a wire tensor (one copy).
    public init(wire: Nnsight_V1_Tensor, limits: HostTensor.Limits = HostTensor.Limits()) throws(WireError) {
        if wire.dtype == .bool {
            var count = 1
            guard wire.shape.count <= limits.maxRank else { throw .invalidTensor("rank \(wire.shape.count) exceeds \(limits.maxRank)") }
            for d in wire.shape {
                guard d >= 0, d <= Int64(limits.maxBytes) else { throw .invalidTensor("dimension \(d) in shape \(wire.shape)") }
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
                guard !overflow, product <= limits.maxBytes else { throw .invalidTensor("shape \(wire.shape) is too large") }
                count = product
            }
            guard wire.data.count == count else { throw .invalidTensor("shape \(wire.shape) of bool needs \(count) bytes, got \(wire.data.count)") }
            self.init(shape: wire.shape.map { Int($0) }, bools: wire.data.map { $0 != 0 })
            return
        }
        let host = try HostTensor(wire, limits: limits)
        switch host.storage {
        case let .float32(values): self.init(shape: host.shape, floats: values)
        case let .int64(values): self.init(shape: host.shape, ints: values)
        }
    }

    /// The wire form: raw little-endian bytes, copied once from wherever the elements live
    /// (a hook's live buffer included).
    public var wire: Nnsight_V1_Tensor {
        var tensor = Nnsight_V1_Tensor()
        tensor.shape = shape.map { Int64($0) }
        switch dtype {
        case .float32:
            tensor.dtype = .float32
            if count > 0, isContiguous {
                switch storage {
                case let .liveFloats(buffer):
                    tensor.data = Data(bytes: buffer.baseAddress! + offset, count: count * 4)
                    return tensor
                case let .float32(values):
                    tensor.data = values.withUnsafeBufferPointer { Data(bytes: $0.baseAddress! + offset, count: count * 4) }
                    return tensor
                default: break
                }
            }
            tensor.data = floats.withUnsafeBufferPointer { Data(buffer: $0) }
        case .int64:
            tensor.dtype = .int64
            tensor.data = int64s.withUnsafeBufferPointer { Data(buffer: $0) }
        case .bool:
            tensor.dtype = .bool
            tensor.data = Data(bools.map { $0 ? 1 : 0 })
        }
        return tensor
    }

    /// The tensor of a decoded host tensor (no copy).
    public init(_ host: HostTensor) {
        switch host.storage {
        case let .float32(values): self.init(shape: host.shape, floats: values)
        case let .int64(values): self.init(shape: host.shape, ints: values)
        }
    }
}
