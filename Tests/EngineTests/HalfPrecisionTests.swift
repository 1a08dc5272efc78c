import Engine
import Foundation
import Testing

/// 16-bit weights against f32 on the oracle's models and prompts: the logits stay within a
/// fixed bound of f32's, and greedy generation picks f32's tokens at every step whose f32
/// top-2 margin exceeds twice that bound (where it is smaller, the two may legitimately part,
/// and the comparison ends for that prompt). The bounds were set from measurement (see
/// BENCHMARKS.md): 2-3x the largest difference seen.
@Suite struct HalfPrecisionTests {
    static let bounds: [WeightType: Float] = [.bf16: 0.1, .f16: 0.02]
    let prompts = [
        [748, 638, 1727, 605, 361, 1422, 382, 316, 292, 289, 538, 334],  // "The Eiffel Tower is in the city of"
        [39, 686, 78, 303, 260, 750],                                   // "Hello world"
        [464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290],          // "The quick brown fox jumps over the lazy dog"
    ]

    /// Greedy steps of f32 and `type` side by side: the largest logit difference, steps compared, steps agreeing.
    func compare(_ directory: String, _ type: WeightType, steps: Int = 12) throws -> (maxDiff: Float, compared: Int, agreeing: Int) {
        let (exact, half) = (try Pipeline(directory: directory), try Pipeline(directory: directory, weightType: type))
        let V = exact.stages[0].config.vocabSize
        let bound = Self.bounds[type]!
        var maxDiff: Float = 0, compared = 0, agreeing = 0
        for prompt in prompts {
            let ids = prompt.map { $0 % V }
            let (a, b) = (exact.makeStates(batch: 1, capacity: ids.count + steps), half.makeStates(batch: 1, capacity: ids.count + steps))
            var (la, lb) = (try exact.forward(StepInput(tokens: ids), states: a).array, try half.forward(StepInput(tokens: ids), states: b).array)
            for s in 0..<steps {
                let (x, y) = (Array(la.suffix(V)), Array(lb.suffix(V)))
                maxDiff = max(maxDiff, zip(x, y).map { abs($0 - $1) }.max()!)
                let sorted = x.sorted(by: >)
                let (ta, tb) = (x.withUnsafeBufferPointer(Sampler.argmax), y.withUnsafeBufferPointer(Sampler.argmax))
                guard sorted[0] - sorted[1] > 2 * bound else { break }
                compared += 1
                guard ta == tb else { break }
                agreeing += 1
                let step = StepInput(tokens: [ta], start: ids.count + s)
                (la, lb) = (try exact.forward(step, states: a).array, try half.forward(step, states: b).array)
            }
        }
        return (maxDiff, compared, agreeing)
    }

    @Test(arguments: [WeightType.bf16, .f16])
    func logitsStayWithinTheBoundAndGreedyTokensAgreeWhereTheMarginIsClear(type: WeightType) throws {
        for model in [Fixtures.tinyModel, Fixtures.path("models/tiny-gpt2-vocab50k")] {
            let (maxDiff, compared, agreeing) = try compare(model, type)
            print("\(type) \((model as NSString).lastPathComponent): logits max abs diff \(maxDiff), greedy steps with a clear margin \(compared), agreeing \(agreeing)")
            #expect(maxDiff > 0, "16-bit weights change the logits a little")
            #expect(maxDiff <= Self.bounds[type]!, "\(type) logits differ from f32 by \(maxDiff) on \(model)")
            #expect(compared > 0 && agreeing == compared, "\(type): \(agreeing) of \(compared) clear-margin steps agree on \(model)")
        }
    }

    @Test func sixteenBitWeightsTakeHalfTheBytes() throws {
        let config = try GPT2Config.load(directory: Fixtures.tinyModel)
        let f32 = try GPT2Weights.random(config: config, seed: 1, layers: 0..<1)
        let bf16 = try GPT2Weights.random(config: config, seed: 1, layers: 0..<1, type: .bf16)
        // The table (V,C) and layer 0's four Conv1Ds (12 C^2 together) take 2 bytes an element
        // instead of 4; wpe, layernorms and biases stay f32 (C = 64: no panel or 64-byte padding).
        let (C, V) = (config.nEmbd, config.vocabSize)
        #expect(f32.parameterBytes - bf16.parameterBytes == 2 * (V * C + 12 * C * C))
        #expect(bf16.parameterCount == f32.parameterCount)
    }
}
