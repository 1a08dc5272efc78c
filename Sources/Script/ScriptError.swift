/// An error in a trace script, with where it happened (1-based line and column).
public struct ScriptError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        case syntax = "SyntaxError"
        case unsupported = "NotSupportedError"
        case name = "NameError"
        case type = "TypeError"
        case value = "ValueError"
        case index = "IndexError"
        case attribute = "AttributeError"
        case key = "KeyError"
        case runtime = "RuntimeError"
        case zeroDivision = "ZeroDivisionError"
        /// An int result beyond 64 bits: trace scripts' ints are 64-bit, not Python's bignums.
        case overflow = "OverflowError"
        /// A value or a loop past the runner's memory or statement limits.
        case memory = "MemoryError"
        case recursion = "RecursionError"
        case stopIteration = "StopIteration"
        /// nnsight's: a module reached after a later one in the same step and invoke.
        case outOfOrder = "OutOfOrderError"
    }

    public var kind: Kind
    public var message: String
    public var file: String
    public var line: Int
    public var column: Int

    public init(_ kind: Kind, _ message: String, file: String = "<script>", line: Int, column: Int) {
        self.kind = kind
        self.message = message
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column): \(kind.rawValue): \(message)" }
}

/// A position in the script.
public struct SourceLocation: Equatable, Sendable {
    public var line: Int
    public var column: Int
}
