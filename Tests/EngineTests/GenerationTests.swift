import Engine
import Foundation
import Testing

/// Generation against the oracle's multi-token goldens, KV cache against recomputation, sampling.
@Suite struct GenerationTests {
    let p1 = [748, 638, 1727, 605, 361, 1422, 382, 316, 292, 289, 538, 334]  // "The Eiffel Tower is in the city of"
    let p2 = [39, 686, 78, 303, 260, 750]                                 // "Hello world"
    let greedy = { (n: Int) in GenerationParameters(maxNewTokens: n, eosTokenId: 1999, padTokenId: 1999) }

    @Test(arguments: [[], [2], [1, 2]])
    func greedyIdsMatchGenerateBasic(splits: [Int]) throws {
        let golden = try GoldenTensor(Fixtures.saves("generate_basic")["output"])
        let result = try Fixtures.loadPipeline(splits: splits).generate(prompts: [p1], greedy(5))
        #expect(result.sequences == [golden.ints])
        #expect(result.steps == 5)
    }

    @Test func hiddenStatesPerStepMatchPerStepHidden() throws {
        let saves = try Fixtures.saves("per_step_hidden")
        let point = HookPoint(.block(3), .output)
        let recorders = (0..<3).map { _ in Recorder(capture: [point]) }
        let result = try Fixtures.loadPipeline(splits: [2]).generate(prompts: [p1], greedy(3)) { recorders[$0] }
        #expect(result.sequences == [try GoldenTensor(saves["output"]).ints])
        for (step, name) in ["h_step0", "h_step1", "h_step2"].enumerated() {
            let golden = try GoldenTensor(saves[name])
            #expect(recorders[step].shapes[point] == golden.shape)
            expectClose(try #require(recorders[step].captures[point]), golden, name)
        }
    }

    /// `if step == 0: h[0].output[0][:] = 0`, then the absolute sum of h[0]'s output each step.
    @Test func editAtStepZeroMatchesCondStep0Zero() throws {
        let saves = try Fixtures.saves("cond_step0_zero")
        let point = HookPoint(.block(0), .output)
        let recorders = (0..<3).map { step in
            Recorder(capture: [point], edits: step == 0 ? [point: { buffer, _ in buffer.update(repeating: 0) }] : [:])
        }
        let result = try Fixtures.loadPipeline().generate(prompts: [p1], greedy(3)) { recorders[$0] }
        #expect(result.sequences == [try GoldenTensor(saves["output"]).ints])
        let sums = try #require(saves["h0_sums"] as? [Any])
        for step in 0..<3 {
            let sum = try #require(recorders[step].captures[point]).reduce(Float(0)) { $0 + abs($1) }
            expectClose([sum], try GoldenTensor(sums[step]), "h0_sums[\(step)]")
        }
    }

    /// `h[0].output[0][:, -1, :] = 0` at every step, collecting `h[-1].output[0]`.
    @Test func editEveryStepMatchesAllZeroH0() throws {
        let saves = try Fixtures.saves("all_zero_h0")
        let (edit, read) = (HookPoint(.block(0), .output), HookPoint(.block(3), .output))
        let recorders = (0..<4).map { _ in
            Recorder(capture: [read], edits: [edit: { buffer, shape in
                let (T, C) = (shape[1], shape[2])
                UnsafeMutableBufferPointer(rebasing: buffer[((T - 1) * C)..<(T * C)]).update(repeating: 0)
            }])
        }
        let result = try Fixtures.loadPipeline(splits: [1, 3]).generate(prompts: [p1], greedy(4)) { recorders[$0] }
        #expect(result.sequences == [try GoldenTensor(saves["output"]).ints])
        let hidden = try #require(saves["hidden"] as? [Any])
        for step in 0..<4 {
            expectClose(try #require(recorders[step].captures[read]), try GoldenTensor(hidden[step]), "hidden[\(step)]")
        }
    }

    /// Two prompts of different lengths, left-padded: ids, padding and last-position hidden states.
    @Test func leftPaddedBatchMatchesBatchedInvokes() throws {
        let saves = try Fixtures.saves("batched_invokes")
        let padded = PaddedBatch(prompts: [p1, p2], padTokenId: 1999)
        #expect(padded.tokens.joined().map { $0 } == (try GoldenTensor(saves["input_ids"])).ints)
        #expect(padded.mask.joined().map { $0 } == (try GoldenTensor(saves["attention_mask"])).ints)
        #expect(padded.positions.joined().map { $0 } == (try GoldenTensor(saves["position_ids"])).ints)

        let point = HookPoint(.block(3), .output)
        let recorders = (0..<4).map { _ in Recorder(capture: [point]) }
        let result = try Fixtures.loadPipeline(splits: [2]).generate(prompts: [p1, p2], greedy(4)) { recorders[$0] }
        #expect(result.sequences.joined().map { $0 } == (try GoldenTensor(saves["output"])).ints)
        for (row, name) in ["last_a", "last_b"].enumerated() {
            let goldens = try #require(saves[name] as? [Any])
            for step in 0..<4 {
                let captured = try #require(recorders[step].captures[point])
                let shape = try #require(recorders[step].shapes[point])
                expectClose(slice(captured, shape: shape, batch: row, position: -1), try GoldenTensor(goldens[step]), "\(name)[\(step)]")
            }
        }
    }

    /// Each step's last-position logits with the cache equal a full recomputation of the sequence.
    @Test(arguments: [false, true])
    func kvCacheEqualsRecomputation(batched: Bool) throws {
        let pipeline = try Fixtures.loadPipeline()
        let prompts = batched ? [p1, p2, [5, 6, 7]] : [p1]
        let steps = 6
        let point = HookPoint(.lmHead, .output)
        let recorders = (0..<steps).map { _ in Recorder(capture: [point]) }
        let result = try pipeline.generate(prompts: prompts, greedy(steps).withoutEOS) { recorders[$0] }
        let V = pipeline.config.vocabSize
        let padded = PaddedBatch(prompts: prompts, padTokenId: 1999)
        for step in 1..<steps {
            // The whole sequence so far (padded prompt + tokens fed), recomputed with no cache.
            let length = padded.length + step
            let tokens = result.sequences.map { Array($0.prefix(length)) }
            let mask = padded.mask.map { $0 + [Int](repeating: 1, count: step) }
            let recomputed = try pipeline.forward(
                StepInput(batch: prompts.count, length: length, tokens: tokens.joined().map { Int32($0) },
                          positions: mask.flatMap(Self.positions), mask: mask.joined().map { UInt8($0) }),
                states: pipeline.makeStates(batch: prompts.count, capacity: length), allLogits: true)
            let cached = try #require(recorders[step].captures[point])  // (B, 1, V)
            for b in 0..<prompts.count {
                let full = Array(recomputed.array[((b * length + length - 1) * V)..<((b * length + length) * V)])
                let incremental = Array(cached[(b * V)..<((b + 1) * V)])
                let worst = zip(full, incremental).map { abs($0 - $1) - 1e-4 * abs($0) }.max()!
                #expect(worst <= 1e-4, "step \(step) row \(b): cached logits differ by \(worst)")
            }
        }
    }

    /// Position ids as nnsight computes them: cumsum(mask) - 1, pads at 0.
    static func positions(_ mask: [Int]) -> [Int32] {
        var seen: Int32 = 0
        return mask.map { m in
            if m == 0 { return 0 }
            defer { seen += 1 }
            return seen
        }
    }

    @Test func samplingIsReproducibleWithASeed() throws {
        let pipeline = try Fixtures.loadPipeline()
        func run(_ sampling: SamplingParameters) throws -> [[Int]] {
            var parameters = greedy(10).withoutEOS
            parameters.sampling = sampling
            return try pipeline.generate(prompts: [p1, p2], parameters).sequences
        }
        let hot = SamplingParameters(temperature: 1.5, topK: 50, topP: 0.95, seed: 7)
        #expect(try run(hot) == run(hot))
        #expect(try run(hot) != run(SamplingParameters(temperature: 1.5, topK: 50, topP: 0.95, seed: 8)))
        #expect(try run(SamplingParameters(temperature: 1, topK: 1, seed: 3)) == run(SamplingParameters()))
        #expect(throws: EngineError.self) { try run(SamplingParameters(temperature: 1, topP: 0)) }
    }

    @Test func stopsWhenEveryRowProducedEOS() throws {
        let pipeline = try Fixtures.loadPipeline()
        // Greedy continuation of p1 starts with 1052: make that token the "eos".
        let result = try pipeline.generate(prompts: [p1], GenerationParameters(maxNewTokens: 8, eosTokenId: 1052, padTokenId: 1999))
        #expect(result.steps == 1)
        #expect(result.generated(0) == [1052])
        // Two rows (greedy: [1052, 808, ...] and [1052, 594, 1215, 64]): the row that produced eos
        // is padded while the other goes on to the limit.
        let two = try pipeline.generate(prompts: [p1, p2], GenerationParameters(maxNewTokens: 4, eosTokenId: 808, padTokenId: 1999))
        #expect(two.generated(0) == [1052, 808, 1999, 1999])
        #expect(two.generated(1) == [1052, 594, 1215, 64])
    }

    @Test func badInputIsATypedError() throws {
        let pipeline = try Fixtures.loadPipeline()
        #expect(throws: EngineError.tokenOutOfRange(id: 2000, vocabSize: 2000)) {
            try pipeline.generate(prompts: [[1, 2000]], greedy(2))
        }
        #expect(throws: EngineError.promptTooLong(length: 131, limit: 128)) {
            try pipeline.generate(prompts: [[Int](repeating: 5, count: 130)], greedy(2))
        }
        #expect(throws: EngineError.self) { try pipeline.generate(prompts: [[]], greedy(2)) }
        #expect(throws: EngineError.self) { try pipeline.generate(prompts: [p1], greedy(0)) }
        // The pipeline keeps serving after a refused request.
        #expect(try pipeline.generate(prompts: [p1], greedy(1)).generated(0) == [1052])
    }
}

extension GenerationParameters {
    var withoutEOS: GenerationParameters {
        var copy = self
        copy.eosTokenId = nil
        return copy
    }
}
