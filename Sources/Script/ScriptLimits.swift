import Foundation
import Graph

/// What one script may spend on the client: a runaway loop or an enormous value ends the script
/// with a clear error naming the limit (and the flag that sets it), never the process.
///
/// ```swift
/// let runner = ScriptRunner(model: model)
/// runner.limits.maxStatements = 1_000_000
/// runner.limits.maxMemoryBytes = 512 << 20
/// ```
public struct ScriptLimits: Sendable {
    /// Statements executed in all (`--max-statements`).
    public var maxStatements = 10_000_000
    /// Iterations of one `while` loop.
    public var maxWhileIterations = 1_000_000
    /// Growth of the process's resident memory while the script runs (`--max-memory`, in MB on the
    /// command line): what the script's own values take, the model's weights not counted.
    public var maxMemoryBytes = 2 << 30
    public init() {}

    /// What one torch op on the client may make: no value larger than the whole memory limit
    /// is allocated (the limit's check on growth comes only after a value exists).
    var values: OpBudget { OpBudget(maxValueBytes: maxMemoryBytes, source: "the script's memory limit (--max-memory)") }

    /// How often (in statements) resident memory is read: /proc is a system call, statements are cheap.
    static let memoryCheckInterval = 1 << 14
}
