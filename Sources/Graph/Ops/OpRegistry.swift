/// One tensor operation of the graph, declared once: its name on the wire, how many inputs it
/// takes, its attributes, how many outputs it has, its shape and dtype rule, and its kernel. The
/// worker's interpreter, the coordinator's client-side evaluator and the compiler's static check
/// all use this declaration.
public struct OpSpec: Sendable {
    public typealias TypeRule = @Sendable (_ inputs: [ValueType], _ attributes: Attributes) throws(OpError) -> ValueType
    public typealias Kernel = @Sendable (_ inputs: [Value], _ attributes: Attributes) throws(OpError) -> Value
    /// Element operations for inputs of these types (for the budget); nil: inputs plus output.
    public typealias WorkRule = @Sendable (_ inputs: [TensorType], _ attributes: Attributes) -> Int

    public let name: String
    public let arity: ClosedRange<Int>
    public let attributes: [AttributeSpec]
    /// 1, or the size of the tuple it returns (`max(dim)` gives values and indices).
    public let outputs: Int
    public let type: TypeRule
    public let kernel: Kernel
    let workRule: WorkRule?
    /// Its output is a view of its input that torch lets a script write through (`x.view(...)`,
    /// `x[:, 0]`, `x.transpose(...)`): a write into it edits the input (a module's value).
    public let writableView: Bool

    public init(_ name: String, arity: ClosedRange<Int>, attributes: [AttributeSpec] = [], outputs: Int = 1, writableView: Bool = false,
                type: @escaping TypeRule, work: WorkRule? = nil, kernel: @escaping Kernel) {
        self.name = name
        self.writableView = writableView
        self.arity = arity
        self.attributes = attributes
        self.outputs = outputs
        self.type = type
        self.workRule = work
        self.kernel = kernel
    }

    /// Element operations of this op on inputs of `inputs` types giving `output`.
    public func work(_ inputs: [ValueType], output: ValueType, _ attributes: Attributes) -> Int {
        let tensors = inputs.compactMap { if case let .tensor(t) = $0 { t } else { nil } }
        if let workRule, tensors.count == inputs.count { return workRule(tensors, attributes) }
        return (inputs + [output]).reduce(0) { total, type in
            switch type {
            case let .tensor(t): total.addingSaturating(OpBudget.elements(t.shape))
            case let .tuple(items): items.reduce(total) { $0.addingSaturating($1.map { OpBudget.elements($0.shape) } ?? 0) }
            }
        }
    }

    /// Its output's type and its work on `inputs`, checked against `budget` before anything is
    /// allocated.
    public func check(_ inputs: [ValueType], _ attributes: Attributes, budget: OpBudget) throws(OpError) -> ValueType {
        let output = try type(inputs, attributes)
        try budget.check(name, inputs: inputs, output: output, work: work(inputs, output: output, attributes))
        return output
    }

    /// Checks the inputs' count and the attributes against the declaration.
    public func validate(inputs: Int, attributes given: Attributes) throws(OpError) {
        guard arity.contains(inputs) else {
            let expected = arity.lowerBound == arity.upperBound ? "\(arity.lowerBound)" : "\(arity.lowerBound) to \(arity.upperBound)"
            throw OpError("\(name) takes \(expected) inputs, got \(inputs)")
        }
        for (key, value) in given.values {
            guard let spec = attributes.first(where: { $0.name == key }) else {
                throw OpError("\(name) has no attribute '\(key)'")
            }
            guard spec.kind == value.kind else { throw OpError("\(name): attribute '\(key)' must be \(spec.kind), got \(value.kind)") }
        }
        for spec in attributes where spec.required && given[spec.name] == nil {
            throw OpError("\(name) needs the attribute '\(spec.name)'")
        }
    }

    /// Validates, checks the budget and runs.
    public func run(_ inputs: [Value], _ attributes: Attributes, budget: OpBudget = .unlimited) throws(OpError) -> Value {
        try validate(inputs: inputs.count, attributes: attributes)
        if budget != .unlimited { _ = try check(inputs.map(\.type), attributes, budget: budget) }
        return try kernel(inputs, attributes)
    }
}

/// The op table: every op a graph may contain, by wire name.
///
/// ```swift
/// let add = OpRegistry.spec("add")!
/// let y = try add.run([.tensor(x), .tensor(.scalar(Float(1)))], Attributes())
/// ```
public enum OpRegistry {
    public static let ops: [OpSpec] = core + torch

    static let core: [OpSpec] = [
        OpSpec("index", arity: 1...1, attributes: [AttributeSpec("index", .index, required: true)], writableView: true,
               type: { t, a throws(OpError) in
                   .tensor(TensorType(shape: try IndexItem.shape(of: a.index("index"), on: try tensor(t[0]).shape), dtype: try tensor(t[0]).dtype))
               },
               kernel: { v, a throws(OpError) in .tensor(try tensor(v[0]).indexed(a.index("index"))) }),
        OpSpec("tuple_item", arity: 1...1, attributes: [AttributeSpec("item", .int, required: true)], writableView: true,
               type: { t, a throws(OpError) in try tupleItem(t[0], a.int("item") ?? 0) },
               kernel: { v, a throws(OpError) in try tupleItem(v[0], a.int("item") ?? 0) }),
        binary("add", .add), binary("sub", .sub), binary("mul", .mul), binary("div", .div),
        binary("remainder", .remainder), binary("floor_divide", .floorDivide),
        unary("neg", float: { -$0 }, int: { 0 &- $0 }),
        unary("abs", float: { Swift.abs($0) }, int: { $0 == .min ? $0 : Swift.abs($0) }),
        OpSpec("clone", arity: 1...1, type: { t, _ throws(OpError) in .tensor(try tensor(t[0])) },
               kernel: { v, _ throws(OpError) in .tensor(try tensor(v[0]).contiguous()) }),
        reduction("sum", .sum), reduction("mean", .mean), reduction("argmax", .argmax),
        reductionTuple("max", values: { x, dim, keepdim throws(OpError) in try Kernels.reduce(x, .max, dim: dim, keepdim: keepdim) },
                       indices: { x, dim, keepdim throws(OpError) in try Kernels.reduce(x, .argmax, dim: dim, keepdim: keepdim) }),
        OpSpec("softmax", arity: 1...1, attributes: [AttributeSpec("dim", .int, required: true)],
               type: { t, a throws(OpError) in
                   let x = try tensor(t[0])
                   _ = try Kernels.normalize(dim: a.int("dim") ?? 0, rank: x.shape.count)
                   return .tensor(TensorType(shape: x.shape, dtype: .float32))
               },
               kernel: { v, a throws(OpError) in .tensor(try Kernels.softmax(try tensor(v[0]), dim: a.int("dim") ?? 0)) }),
    ]

    private static let byName: [String: OpSpec] = Dictionary(uniqueKeysWithValues: ops.map { ($0.name, $0) })

    public static func spec(_ name: String) -> OpSpec? { byName[name] }

    // MARK: - helpers for declarations

    static func tensor(_ t: ValueType) throws(OpError) -> TensorType {
        guard case let .tensor(x) = t else { throw OpError("a tuple must be indexed first (e.g. output[0])") }
        return x
    }

    static func tensor(_ v: Value) throws(OpError) -> Tensor {
        guard case let .tensor(x) = v else { throw OpError("a tuple must be indexed first (e.g. output[0])") }
        return x
    }

    static func tupleItem(_ t: ValueType, _ index: Int) throws(OpError) -> ValueType {
        switch t {
        case let .tuple(items):
            return .tensor(try item(items, index))
        case let .tensor(x):
            return .tensor(TensorType(shape: try IndexItem.shape(of: [.at(index)], on: x.shape), dtype: x.dtype))
        }
    }

    static func tupleItem(_ v: Value, _ index: Int) throws(OpError) -> Value {
        switch v {
        case let .tuple(items):
            return .tensor(try item(items, index))
        case let .tensor(x):
            return .tensor(try x.indexed([.at(index)]))
        }
    }

    /// Item `index` of a tuple (negative counts from the end); None items cannot be used.
    static func item<T>(_ items: [T?], _ index: Int) throws(OpError) -> T {
        let i = index < 0 ? index + items.count : index
        guard i >= 0, i < items.count else { throw OpError("tuple index \(index) out of range (size \(items.count))", exception: .indexError) }
        guard let item = items[i] else { throw OpError("output[\(index)] is None") }
        return item
    }

    static func binary(_ name: String, _ op: Kernels.Binary) -> OpSpec {
        OpSpec(name, arity: 2...2,
               type: { t, _ throws(OpError) in .tensor(try Kernels.binaryType(try tensor(t[0]), try tensor(t[1]), op)) },
               kernel: { v, _ throws(OpError) in .tensor(try Kernels.binary(op, try tensor(v[0]), try tensor(v[1]))) })
    }

    static func unary(_ name: String, float: @escaping @Sendable (Float) -> Float, int: @escaping @Sendable (Int64) -> Int64) -> OpSpec {
        OpSpec(name, arity: 1...1,
               type: { t, _ throws(OpError) in
                   let x = try tensor(t[0])
                   return .tensor(TensorType(shape: x.shape, dtype: x.dtype == .bool ? .int64 : x.dtype))
               },
               kernel: { v, _ throws(OpError) in .tensor(Kernels.map(try tensor(v[0]), float: float, int: int)) })
    }

    static func reduction(_ name: String, _ reduction: Kernels.Reduction) -> OpSpec {
        OpSpec(name, arity: 1...1, attributes: [AttributeSpec("dim", .int), AttributeSpec("keepdim", .bool)],
               type: { t, a throws(OpError) in
                   let x = try tensor(t[0])
                   let shape = try Kernels.reducedShape(x.shape, dim: a.int("dim"), keepdim: a.bool("keepdim"))
                   let dtype: DType = switch reduction {
                   case .argmax: .int64
                   case .mean: .float32
                   case .sum, .max: x.dtype == .bool ? .int64 : x.dtype
                   }
                   return .tensor(TensorType(shape: shape, dtype: dtype))
               },
               kernel: { v, a throws(OpError) in
                   .tensor(try Kernels.reduce(try tensor(v[0]), reduction, dim: a.int("dim"), keepdim: a.bool("keepdim")))
               })
    }
}
