import Engine

/// What one op may allocate and compute, checked from its inputs' and output's static types
/// before its kernel runs: a request over budget is an `OpError` naming the op, the shape and the
/// limit, never an allocation that takes the process down. Each place that runs ops sets its own
/// (the coordinator folding constants on its serving loop, a worker per trace, the script
/// runner from `--max-memory`).
///
/// ```swift
/// let budget = OpBudget(maxValueBytes: 64 << 20, maxWork: 1 << 28)
/// _ = try OpRegistry.spec("matmul")!.run([.tensor(a), .tensor(b)], Attributes(), budget: budget)
/// ```
public struct OpBudget: Sendable, Equatable {
    /// Bytes of one op's output.
    public var maxValueBytes: Int
    /// Element operations of one op (multiply-adds for products; inputs plus output otherwise).
    public var maxWork: Int
    /// Where the limit comes from, for the message ("--max-memory", "the coordinator's folding limit").
    public var source: String

    public init(maxValueBytes: Int, maxWork: Int = .max, source: String = "the limit") {
        self.maxValueBytes = maxValueBytes
        self.maxWork = maxWork
        self.source = source
    }

    public static let unlimited = OpBudget(maxValueBytes: .max)

    /// Bytes of a value of `type` (saturating: a shape's product can exceed Int).
    public static func bytes(_ type: ValueType) -> Int {
        switch type {
        case let .tensor(t): bytes(t)
        case let .tuple(items): items.reduce(0) { $0.addingSaturating($1.map(bytes) ?? 0) }
        }
    }

    public static func bytes(_ t: TensorType) -> Int { elements(t.shape).multipliedSaturating(by: t.dtype.byteWidth) }

    public static func elements(_ shape: [Int]) -> Int { shape.reduce(1) { $0.multipliedSaturating(by: $1) } }

    /// Checks an op's output and work against this budget.
    public func check(_ name: String, inputs: [ValueType], output: ValueType, work: Int) throws(OpError) {
        let bytes = Self.bytes(output)
        guard bytes <= maxValueBytes else {
            throw OpError("\(name) would make a value of \(output) (\(Self.describe(bytes: bytes))), over \(source) of \(Self.describe(bytes: maxValueBytes)) per value", overBudget: true)
        }
        guard work <= maxWork else {
            throw OpError("\(name) of \(inputs.map(\.description).joined(separator: ", ")) is \(Self.describe(count: work)) operations, over \(source) of \(Self.describe(count: maxWork))", overBudget: true)
        }
    }

    public static func describe(bytes: Int) -> String {
        if bytes == .max { return "more than 8 EiB" }
        let units = [(1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        for (size, unit) in units where bytes >= size {
            return "\((Double(bytes) / Double(size) * 10).rounded() / 10) \(unit)"
        }
        return "\(bytes) bytes"
    }

    /// The prompt pass's widest activation for `rows` prompts of up to `tokens`: the MLP's inner
    /// width, or the logits where the head runs (the coordinator checks the whole model, a stage
    /// its own layers).
    public func checkPromptPass(rows: Int, tokens: Int, config: GPT2Config, withHead: Bool) throws(OpError) {
        let width = max(config.innerDim, withHead ? config.vocabSize : 0)
        let bytes = Self.bytes(TensorType(shape: [rows, tokens, width], dtype: .float32))
        guard bytes <= maxValueBytes else {
            throw OpError("a batch of \(rows) prompts of up to \(tokens) tokens makes activations of [\(rows), \(tokens), \(width)] float32 (\(Self.describe(bytes: bytes))), over \(source) of \(Self.describe(bytes: maxValueBytes)) per value", overBudget: true)
        }
    }

    static func describe(count: Int) -> String {
        if count == .max { return "more than 9.2e18" }
        return count >= 1_000_000 ? "\((Double(count) / 1e8).rounded() / 10) G" : "\(count)"
    }
}

extension Int {
    func multipliedSaturating(by other: Int) -> Int {
        let (product, overflow) = multipliedReportingOverflow(by: other)
        return overflow || product < 0 ? .max : product
    }

    func addingSaturating(_ other: Int) -> Int {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }
}
