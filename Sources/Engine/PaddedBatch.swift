/// Prompts of different lengths as one batch, padded on the left as nnsight and Hugging Face do
/// for GPT-2: pad = `<|endoftext|>`, attention mask 0 on pads, position ids `cumsum(mask) - 1`
/// with pads at 0.
///
/// ```swift
/// let batch = PaddedBatch(prompts: [[748, 638, 1727], [39, 68]], padTokenId: 1999)
/// batch.tokens      // [[748, 638, 1727], [1999, 39, 68]]
/// batch.positions   // [[0, 1, 2], [0, 0, 1]]
/// ```
public struct PaddedBatch: Sendable, Equatable {
    public let tokens: [[Int]]
    public let mask: [[Int]]
    public let positions: [[Int]]

    public init(prompts: [[Int]], padTokenId: Int) {
        let length = prompts.map(\.count).max() ?? 0
        tokens = prompts.map { [Int](repeating: padTokenId, count: length - $0.count) + $0 }
        mask = prompts.map { [Int](repeating: 0, count: length - $0.count) + [Int](repeating: 1, count: $0.count) }
        positions = prompts.map { [Int](repeating: 0, count: length - $0.count) + Array(0..<$0.count) }
    }

    public var batch: Int { tokens.count }
    public var length: Int { tokens.first?.count ?? 0 }

    /// The prompt pass.
    public var firstStep: StepInput {
        StepInput(batch: batch, length: length, tokens: tokens.joined().map { Int32($0) },
                  positions: positions.joined().map { Int32($0) }, mask: mask.joined().map { UInt8($0) })
    }
}

extension StepInput {
    /// The decode step after a step whose rows ended at `lastPositions`: each row's new token at
    /// the next position, attended. The one rule for the Engine's loop, the last stage of a ring
    /// (which starts each next step) and the coordinator's record of a trace's inputs.
    public static func decode(tokens: [Int], after lastPositions: [Int]) -> StepInput {
        StepInput(batch: tokens.count, length: 1, tokens: tokens.map { Int32(truncatingIfNeeded: $0) },
                  positions: lastPositions.map { Int32(truncatingIfNeeded: $0 + 1) },
                  mask: [UInt8](repeating: 1, count: tokens.count))
    }

    /// Each row's last position id (what `decode(tokens:after:)` continues from).
    public var lastPositions: [Int] { (0..<batch).map { Int(positions[$0 * length + length - 1]) } }
}
