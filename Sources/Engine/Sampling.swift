import Foundation

/// How the next token is chosen from the last position's logits.
///
/// ```swift
/// let greedy = SamplingParameters()                       // argmax, the default
/// let sampled = SamplingParameters(temperature: 0.8, topK: 40, topP: 0.95, seed: 7)
/// ```
public struct SamplingParameters: Sendable, Equatable {
    /// 0 means greedy (argmax).
    public var temperature: Float
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int
    /// Keep the smallest set of tokens whose probability reaches p (1: all).
    public var topP: Float
    public var seed: UInt64
    /// Hugging Face's `repetition_penalty` (1: none): before choosing, the logit of every token
    /// already in the row (prompt, its left padding, generated ids) is divided by it when
    /// positive and multiplied by it when negative.
    public var repetitionPenalty: Float

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0, repetitionPenalty: Float = 1) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.seed = seed
        self.repetitionPenalty = repetitionPenalty
    }

    public var isGreedy: Bool { temperature == 0 }

    public func validate() throws {
        guard temperature >= 0, temperature.isFinite else { throw EngineError.invalidArgument("temperature must be >= 0, got \(temperature)") }
        guard topK >= 0 else { throw EngineError.invalidArgument("top_k must be >= 0, got \(topK)") }
        guard topP > 0, topP <= 1 else { throw EngineError.invalidArgument("top_p must be in (0, 1], got \(topP)") }
        guard repetitionPenalty > 0, repetitionPenalty.isFinite else {
            throw EngineError.invalidArgument("repetition_penalty must be a positive number, got \(repetitionPenalty)")
        }
    }
}

/// Picks tokens from logits; holds the seeded generator so a run is reproducible.
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var rng: SplitMix64
    private var candidates: [(index: Int, logit: Float)] = []
    /// Per row, the ids seen so far (kept only for a repetition penalty).
    private var history: [Set<Int>] = []
    private var penalized: [Float] = []

    /// - Parameter prompts: the batch's rows, unpadded (their left padding with `pad` counts
    ///   as seen, as Hugging Face's penalty sees the padded input ids).
    public init(_ parameters: SamplingParameters, prompts: [[Int]] = [], pad: Int = 0) {
        self.parameters = parameters
        rng = SplitMix64(seed: parameters.seed)
        if parameters.repetitionPenalty != 1 {
            let longest = prompts.map(\.count).max() ?? 0
            history = prompts.map { Set($0).union($0.count < longest ? [pad] : []) }
        }
    }

    /// Index of the largest value; the first one on ties, as `torch.argmax`.
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        for i in 0..<logits.count where logits[i] > bestValue {
            bestValue = logits[i]
            best = i
        }
        return best
    }

    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int {
        guard !parameters.isGreedy else { return Self.argmax(logits) }
        candidates.removeAll(keepingCapacity: true)
        for i in 0..<logits.count { candidates.append((i, logits[i] / parameters.temperature)) }
        candidates.sort { $0.logit > $1.logit || ($0.logit == $1.logit && $0.index < $1.index) }
        if parameters.topK > 0 && parameters.topK < candidates.count {
            candidates.removeLast(candidates.count - parameters.topK)
        }
        let maxLogit = candidates[0].logit
        var probabilities = candidates.map { expf($0.logit - maxLogit) }
        var total = probabilities.reduce(0, +)
        if parameters.topP < 1 {
            var cumulative: Float = 0
            var keep = probabilities.count
            for (i, p) in probabilities.enumerated() {
                cumulative += p / total
                if cumulative >= parameters.topP {
                    keep = i + 1
                    break
                }
            }
            probabilities.removeLast(probabilities.count - keep)
            total = probabilities.reduce(0, +)
        }
        let u = rng.nextUnitFloat() * total
        var acc: Float = 0
        for (i, p) in probabilities.enumerated() {
            acc += p
            if u < acc { return candidates[i].index }
        }
        return candidates[probabilities.count - 1].index
    }
}

extension Sampler {
    /// The next token of every row from a last stage's logits (`[B, T, V]` or `[B, 1, V]`: the
    /// last position is used). Rows that already produced `eos` get `pad`, as Hugging Face's
    /// `generate` does; a row that produces `eos` now is marked in `finished`.
    public mutating func nextTokens(_ logits: StageOutput, finished: inout [Bool], eos: Int?, pad: Int) -> [Int] {
        let (B, V) = (logits.shape[0], logits.shape[2])
        let rowLength = logits.shape[1] * V
        return logits.withValues { values in
            (0..<B).map { b in
                let last = UnsafeBufferPointer(rebasing: values[(b * rowLength + rowLength - V)..<((b + 1) * rowLength)])
                var token: Int
                if b < history.count {
                    // One buffer for every row and step (no allocation per token).
                    penalized.removeAll(keepingCapacity: true)
                    penalized.append(contentsOf: last)
                    let p = parameters.repetitionPenalty
                    for id in history[b] where id >= 0 && id < V { penalized[id] = penalized[id] < 0 ? penalized[id] * p : penalized[id] / p }
                    token = penalized.withUnsafeBufferPointer { next($0) }
                } else {
                    token = next(last)
                }
                if finished[b] { token = pad }
                if token == eos { finished[b] = true }
                if b < history.count { history[b].insert(token) }
                return token
            }
        }
    }
}
