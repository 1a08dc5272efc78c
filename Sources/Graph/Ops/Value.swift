/// A graph value: a tensor, or a tuple (a module's tuple output such as `(hidden,)` or
/// `(attn_output, None)`, or an op with several outputs such as `max(dim)`).
public enum Value: Sendable {
    case tensor(Tensor)
    case tuple([Tensor?])

    public var type: ValueType {
        switch self {
        case let .tensor(t): .tensor(t.type)
        case let .tuple(items): .tuple(items.map { $0.map { TensorType(shape: $0.shape, dtype: $0.dtype) } })
        }
    }
}

/// The static type of a tensor: shape and dtype, known when the trace is recorded.
public struct TensorType: Equatable, Sendable, CustomStringConvertible {
    public var shape: [Int]
    public var dtype: DType

    public init(shape: [Int], dtype: DType) {
        self.shape = shape
        self.dtype = dtype
    }

    public var description: String { "\(dtype)\(shape)" }
}

extension Tensor {
    /// Its static type: shape and dtype.
    public var type: TensorType { TensorType(shape: shape, dtype: dtype) }
}

/// The static type of a graph value.
public enum ValueType: Equatable, Sendable, CustomStringConvertible {
    case tensor(TensorType)
    case tuple([TensorType?])

    public var description: String {
        switch self {
        case let .tensor(t): t.description
        case let .tuple(items): "(" + items.map { $0?.description ?? "None" }.joined(separator: ", ") + ")"
        }
    }
}

/// An attribute of an op: `dim`, `keepdim`, an index expression, ...
public enum Attribute: Equatable, Sendable {
    case int(Int)
    case float(Double)
    case bool(Bool)
    case string(String)
    case ints([Int])
    case index([IndexItem])

    var kind: AttributeKind {
        switch self {
        case .int: .int
        case .float: .float
        case .bool: .bool
        case .string: .string
        case .ints: .ints
        case .index: .index
        }
    }
}

public enum AttributeKind: String, Sendable { case int, float, bool, string, ints, index }

/// An op's attributes by name, with typed reads.
public struct Attributes: Equatable, Sendable {
    public var values: [String: Attribute]

    public init(_ values: [String: Attribute] = [:]) { self.values = values }

    public subscript(_ name: String) -> Attribute? {
        get { values[name] }
        set { values[name] = newValue }
    }

    public func int(_ name: String) -> Int? {
        if case let .int(v)? = values[name] { return v }
        return nil
    }

    public func bool(_ name: String) -> Bool {
        if case let .bool(v)? = values[name] { return v }
        return false
    }

    /// A float attribute (an int one is taken as its value, as Python would).
    public func double(_ name: String) -> Double? {
        switch values[name] {
        case let .float(v)?: v
        case let .int(v)?: Double(v)
        default: nil
        }
    }

    public func ints(_ name: String) -> [Int]? {
        if case let .ints(v)? = values[name] { return v }
        return nil
    }

    public func string(_ name: String) -> String? {
        if case let .string(v)? = values[name] { return v }
        return nil
    }

    public func index(_ name: String) -> [IndexItem] {
        if case let .index(v)? = values[name] { return v }
        return []
    }
}

/// An attribute an op declares: its name, kind, and whether it must be given.
public struct AttributeSpec: Sendable {
    public let name: String
    public let kind: AttributeKind
    public let required: Bool

    public init(_ name: String, _ kind: AttributeKind, required: Bool = false) {
        self.name = name
        self.kind = kind
        self.required = required
    }
}
