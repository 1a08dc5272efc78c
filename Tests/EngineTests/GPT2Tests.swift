import Engine
import Foundation
import Testing

/// The forward pass against the real nnsight/transformers goldens on the fixture model.
@Suite struct GPT2Tests {
    let prompt = [748, 638, 1727, 605, 361, 1422, 382, 316, 292, 289, 538, 334]  // P1, 12 tokens

    @Test(arguments: [[], [2], [1, 3]])
    func traceBasicMatchesGoldens(splits: [Int]) throws {
        let saves = try Fixtures.saves("trace_basic")
        let pipeline = try Fixtures.loadPipeline(splits: splits)
        let wanted: [(String, HookPoint)] = [
            ("embed", HookPoint(.wte, .output)),
            ("h0_attn", HookPoint(.attn(0), .output)), ("h0_mlp", HookPoint(.mlp(0), .output)),
            ("h0", HookPoint(.block(0), .output)),
            ("h1_attn", HookPoint(.attn(1), .output)), ("h1_mlp", HookPoint(.mlp(1), .output)),
            ("h1", HookPoint(.block(1), .output)), ("h_last", HookPoint(.block(3), .output)),
            ("ln_f", HookPoint(.lnF, .output)), ("logits", HookPoint(.lmHead, .output)),
        ]
        let recorder = Recorder(capture: Set(wanted.map(\.1)))
        let states = pipeline.makeStates(batch: 1, capacity: prompt.count)
        let logits = try pipeline.forward(StepInput(tokens: prompt), states: states, hooks: recorder)
        for (name, point) in wanted {
            let golden = try GoldenTensor(saves[name])
            #expect(recorder.shapes[point] == golden.shape, "\(name) shape")
            expectClose(try #require(recorder.captures[point]), golden, name)
        }
        #expect(logits.shape == [1, 12, 2000])
        let last = Array(logits.array[(11 * 2000)...])
        #expect(last.withUnsafeBufferPointer(Sampler.argmax) == (try GoldenTensor(saves["next_token"])).ints[0])
    }

    @Test func lastPositionLogitsEqualFullLogits() throws {
        let pipeline = try Fixtures.loadPipeline()
        let full = try pipeline.forward(StepInput(tokens: prompt), states: pipeline.makeStates(batch: 1, capacity: 12), allLogits: true)
        let fullLast = Array(full.array[(11 * 2000)...])
        let last = try pipeline.forward(StepInput(tokens: prompt), states: pipeline.makeStates(batch: 1, capacity: 12))
        #expect(last.shape == [1, 1, 2000])
        // sgemv (one row) and sgemm (all rows) sum in different orders: equal up to float rounding.
        let worst = zip(last.array, fullLast).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-5, "last-position logits differ from the full computation by \(worst)")
    }

    /// Running `[0, k)` then `[k, n)` is bit-identical to `[0, n)`, through a whole generation.
    @Test func layerRangesAreBitIdentical() throws {
        let whole = try Fixtures.loadPipeline()
        let parameters = GenerationParameters(maxNewTokens: 6, eosTokenId: nil, padTokenId: 1999)
        let prompts = [prompt, [39, 68, 100]]
        let probe = Set([HookPoint(.block(3), .output), HookPoint(.lmHead, .output)])
        let expected = try whole.generate(prompts: prompts, parameters)
        for k in 1..<4 {
            let split = try Fixtures.loadPipeline(splits: [k])
            #expect(split.stages.map(\.layers) == [0..<k, k..<4])
            var wholeCaptures: [[Float]] = [], splitCaptures: [[Float]] = []
            let recordersA = (0..<6).map { _ in Recorder(capture: probe) }
            let recordersB = (0..<6).map { _ in Recorder(capture: probe) }
            let a = try whole.generate(prompts: prompts, parameters) { recordersA[$0] }
            let b = try split.generate(prompts: prompts, parameters) { recordersB[$0] }
            #expect(a == b && a == expected, "split at \(k)")
            for s in 0..<6 {
                for point in probe {
                    wholeCaptures.append(try #require(recordersA[s].captures[point]))
                    splitCaptures.append(try #require(recordersB[s].captures[point]))
                }
            }
            #expect(wholeCaptures == splitCaptures, "activations with split at \(k) differ")
        }
    }
}

/// Inputs are what flowed into a module: the previous module's output, as in Hugging Face.
@Suite struct HookPointTests {
    @Test func inputsEqualTheOutputsThatFeedThem() throws {
        let pipeline = try Fixtures.loadPipeline(splits: [2])
        let pairs: [(HookPoint, HookPoint)] = [
            (HookPoint(.block(1), .input), HookPoint(.block(0), .output)),
            (HookPoint(.block(2), .input), HookPoint(.block(1), .output)),   // across the stage boundary
            (HookPoint(.ln1(3), .input), HookPoint(.block(2), .output)),
            (HookPoint(.attn(3), .input), HookPoint(.ln1(3), .output)),
            (HookPoint(.mlp(3), .input), HookPoint(.ln2(3), .output)),
            (HookPoint(.lnF, .input), HookPoint(.block(3), .output)),
            (HookPoint(.lmHead, .input), HookPoint(.lnF, .output)),
        ]
        let recorder = Recorder(capture: Set(pairs.flatMap { [$0.0, $0.1] }))
        _ = try pipeline.forward(StepInput(tokens: [748, 638, 1727]), states: pipeline.makeStates(batch: 1, capacity: 3), hooks: recorder)
        for (input, output) in pairs {
            #expect(recorder.captures[input] != nil && recorder.captures[input] == recorder.captures[output], "\(input) != \(output)")
        }
    }

    @Test func tokenIdsAreVisibleAndEditableAtTheEmbeddingInput() throws {
        final class SwapTokens: HookHandler {
            var seen: [Int32] = []
            func wants(_ point: HookPoint) -> Bool { point == HookPoint(.wte, .input) }
            func visit(_ point: HookPoint, _ value: HookValue) throws {
                guard case let .ids(ids, shape) = value else { return }
                #expect(shape == [1, 3])
                seen = Array(ids)
                ids[2] = 5
            }
        }
        let pipeline = try Fixtures.loadPipeline()
        let swap = SwapTokens()
        let edited = try pipeline.forward(StepInput(tokens: [748, 638, 1727]), states: pipeline.makeStates(batch: 1, capacity: 3), hooks: swap).array
        #expect(swap.seen == [748, 638, 1727])
        let direct = try pipeline.forward(StepInput(tokens: [748, 638, 5]), states: pipeline.makeStates(batch: 1, capacity: 3)).array
        #expect(edited == direct)
    }

    @Test func forwardOrderListsEveryPointOnce() {
        let order = HookPoint.forwardOrder(layers: 2)
        #expect(order.count == 6 + 2 * 24 + 4)  // wte, wpe, drop; 12 modules per layer; ln_f, lm_head
        #expect(Set(order).count == order.count)
        #expect(order.first == HookPoint(.wte, .input) && order.last == HookPoint(.lmHead, .output))
        #expect(order.firstIndex(of: HookPoint(.mlp(0), .output))! < order.firstIndex(of: HookPoint(.block(0), .output))!)
    }

    /// The forward pass fires every hook point of the module tree, in the tree's order, with
    /// the shapes the tree declares (c_attn [B, T, 3C], c_fc and act [B, T, n_inner]).
    @Test func theEngineFiresTheTreesPointsInOrder() throws {
        final class Recorder: HookHandler {
            var points: [HookPoint] = []
            var shapes: [HookPoint: [Int]] = [:]
            func wants(_ point: HookPoint) -> Bool { true }
            func visit(_ point: HookPoint, _ value: HookValue) throws {
                points.append(point)
                switch value {
                case let .floats(_, shape), let .ids(_, shape): shapes[point] = shape
                }
            }
        }
        let pipeline = try Fixtures.loadPipeline()
        let recorder = Recorder()
        _ = try pipeline.forward(StepInput(tokens: [748, 638, 1727]), states: pipeline.makeStates(batch: 1, capacity: 3), hooks: recorder)
        let layers = pipeline.config.nLayer
        // Within the layers the order is exact (the embeddings fire both inputs first).
        #expect(recorder.points.filter { $0.module.layer >= 0 } == HookPoint.forwardOrder(layers: layers).filter { $0.module.layer >= 0 })
        #expect(Set(recorder.points) == Set(HookPoint.forwardOrder(layers: layers)))
        #expect(recorder.shapes[HookPoint(.cAttn(0), .output)] == [1, 3, 3 * pipeline.config.nEmbd])
        #expect(recorder.shapes[HookPoint(.act(1), .output)] == [1, 3, pipeline.config.innerDim])
        #expect(recorder.shapes[HookPoint(.mlpProj(2), .output)] == [1, 3, pipeline.config.nEmbd])
    }
}
