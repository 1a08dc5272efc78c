import Engine
import Graph

/// What one trace may ask of the cluster, checked by the compiler before anything runs: every
/// value's size from its static shape, the prompt pass's widest activation, the KV cache of the
/// whole model, and the ops of constants the coordinator computes itself (on its serving loop or
/// beside it, so they are small). A trace over budget is refused with an error naming the node,
/// the shape and the limit.
///
/// ```swift
/// var budget = TraceBudget()
/// budget.maxValueBytes = 256 << 20   // serve --max-value-mb 256
/// ```
public struct TraceBudget: Sendable, Equatable {
    /// Bytes of any one value of the trace (`--max-value-mb`).
    public var maxValueBytes = 1 << 30
    /// Bytes of the KV cache of every layer for the trace's rows (`--max-trace-mb`).
    public var maxCacheBytes = 8 << 30
    /// Ops of constants computed on the coordinator: small, so that no submission holds it up.
    public var folding = OpBudget(maxValueBytes: 64 << 20, maxWork: 1 << 28,
                                  source: "the coordinator's limit for ops of constants (compute them before the trace instead)")

    public init() {}

    /// The per-value budget of ops that run on the stages (and on the client's values).
    public var values: OpBudget { OpBudget(maxValueBytes: maxValueBytes, source: "the trace's limit (--max-value-mb)") }

    /// The prompt pass's widest activation (the logits of every position) and the KV cache of
    /// every layer, for `rows` prompts of up to `promptLength` tokens and `newTokens` steps.
    func checkShape(rows: Int, promptLength: Int, newTokens: Int, config: GPT2Config) throws(TraceError) {
        do throws(OpError) { try values.checkPromptPass(rows: rows, tokens: promptLength, config: config, withHead: true) } catch {
            throw TraceError(.overBudget, error.description)
        }
        let cache = KVCache.byteCount(config: config, layers: config.nLayer, batch: rows, capacity: promptLength + newTokens - 1)
        guard cache <= maxCacheBytes else {
            throw TraceError(.overBudget, "a batch of \(rows) prompts of up to \(promptLength) tokens and \(newTokens) new tokens needs \(OpBudget.describe(bytes: cache)) of KV cache, over the trace's limit of \(OpBudget.describe(bytes: maxCacheBytes)) (--max-trace-mb)")
        }
    }
}
