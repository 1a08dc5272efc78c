import Wire

/// The declarative tensor operations of the graph, shared by the worker's interpreter and the
/// coordinator (which evaluates nodes that depend only on the finished generation).
public enum GraphOps {
    /// A node's value as a tensor: a tuple output must be indexed first.
    static func tensor(_ value: GraphValue?, node id: UInt32) throws(TensorError) -> NDArray {
        switch value {
        case let .tensor(t)?: return t
        case .tuple?: throw TensorError("node \(id) is a tuple; index it first (e.g. output[0])")
        case nil: throw TensorError("value of node \(id) is not available here")
        }
    }

    /// Evaluates a tensor op on values looked up by node id.
    static func evaluate(_ op: Nnsight_V1_Op, value: (UInt32) -> GraphValue?) throws -> GraphValue {
        func tensor(_ id: UInt32) throws -> NDArray { try GraphOps.tensor(value(id), node: id) }
        func input(_ i: Int) throws -> NDArray {
            guard i < op.inputs.count else { throw TensorError("\(op.code) needs \(i + 1) inputs") }
            return try tensor(op.inputs[i])
        }
        let dim = op.hasDim ? Int(op.dim) : nil
        switch op.code {
        case .opTupleItem:
            guard let id = op.inputs.first, let value = value(id) else { throw TensorError("missing input") }
            let index = dim ?? 0
            switch value {
            case let .tuple(items):
                let i = index < 0 ? index + items.count : index
                guard i >= 0, i < items.count else { throw TensorError("tuple index \(index) out of range (size \(items.count))") }
                guard let item = items[i] else { throw TensorError("output[\(index)] is None") }
                return .tensor(item)
            case let .tensor(t):
                return .tensor(try t.indexed([.at(index)]))
            }
        case .opIndex:
            return .tensor(try input(0).indexed(op.index.map(IndexItem.init)))
        case .opAdd, .opSub, .opMul, .opDiv:
            let kind: BinaryOp = [.opAdd: .add, .opSub: .sub, .opMul: .mul, .opDiv: .div][op.code]!
            let a = try input(0)
            let b = op.hasScalar ? NDArray.scalar(op.scalar, dtype: op.scalar.rounded() == op.scalar ? a.dtype : .float32) : try input(1)
            return .tensor(op.scalarOnLeft ? try b.combined(kind, a) : try a.combined(kind, b))
        case .opNeg: return .tensor(try input(0).mapped { -$0 })
        case .opAbs: return .tensor(try input(0).mapped { abs($0) })
        case .opClone: return .tensor(try input(0))
        case .opArgmax: return .tensor(try input(0).reduced(.argmax, dim: dim, keepdim: op.keepdim))
        case .opSoftmax: return .tensor(try input(0).reduced(.softmax, dim: dim))
        case .opSum: return .tensor(try input(0).reduced(.sum, dim: dim, keepdim: op.keepdim))
        case .opMean: return .tensor(try input(0).reduced(.mean, dim: dim, keepdim: op.keepdim))
        case .opMax: return .tensor(try input(0).reduced(.max, dim: dim, keepdim: op.keepdim))
        default: throw TensorError("unsupported op \(op.code)")
        }
    }

    /// Evaluates an op whose inputs are plain tensors.
    public static func evaluate(_ op: Nnsight_V1_Op, tensors: [UInt32: NDArray]) throws -> NDArray {
        guard case let .tensor(t) = try evaluate(op, value: { tensors[$0].map(GraphValue.tensor) }) else {
            throw TensorError("\(op.code) produced a tuple")
        }
        return t
    }
}
