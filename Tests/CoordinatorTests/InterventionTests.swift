import Coordinator
import Engine
import Foundation
import Testing
import Worker

/// Behaviour beyond the oracle cases, each checked against a run that computes the same thing
/// another way (the Engine's own hooks, or per-step loops).
@Suite(.serialized) struct InterventionTests {
    @Test func iterOverAListOfStepsVisitsExactlyThose() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 2)
        var visited: [Int] = [], tokens: SavedList!, output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { tracer in
            tokens = tracer.list().save()
            for step in tracer.iter[[0, 2, 4]] {
                visited.append(step)
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()
        }
        #expect(visited == [0, 2, 4])
        let generated = Array(try output.value[0].ints.suffix(5))
        #expect(tokens.items.map { $0.ints[0] } == [generated[0], generated[2], generated[4]])
    }

    @Test func allCombinedWithABoundedIter() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 3)
        var everyStep: SavedList!, someSteps: SavedList!
        try model.generate(Oracle.p1, maxNewTokens: 4) { tracer in
            everyStep = tracer.list().save()
            someSteps = tracer.list().save()
            for _ in tracer.all() { everyStep.append(model.transformer.h[1].output[0][.all, -1, .all]) }
            for _ in tracer.iter[2...] { someSteps.append(model.transformer.h[1].output[0][.all, -1, .all]) }
        }
        #expect(everyStep.count == 4 && someSteps.count == 2)
        #expect(someSteps.items == Array(everyStep.items[2...]))
    }

    /// Edits at two layers in one step equal the same edits made with Engine hooks directly.
    @Test func editsAtSeveralLayersInOneStep() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 2)
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 4) { tracer in
            for _ in tracer.iter[0] {
                model.transformer.h[0].output[0][.all, -1, .all] = 0
                model.transformer.h[3].mlp.output[.all, .all, .slice(0, 8)] = model.transformer.h[3].mlp.output[.all, .all, .slice(8, 16)] * 2
            }
            output = model.generator.output.save()
        }
        final class Edits: HookHandler {
            func wants(_ p: HookPoint) -> Bool { p == HookPoint(.block(0), .output) || p == HookPoint(.mlp(3), .output) }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                guard case let .floats(b, shape) = v else { return }
                let (T, C) = (shape[1], shape[2])
                if p.module == .block(0) { for c in 0..<C { b[(T - 1) * C + c] = 0 } }
                else { for t in 0..<T { for c in 0..<8 { b[t * C + c] = b[t * C + c + 8] * 2 } } }
            }
        }
        let pipeline = try Pipeline(directory: Oracle.model)
        let ids = model.tokenizer.encode(Oracle.p1)
        let expected = try pipeline.generate(prompts: [ids], GenerationParameters(maxNewTokens: 4, eosTokenId: 1999, padTokenId: 1999)) { $0 == 0 ? Edits() : nil }
        #expect(try output.value.ints == expected.sequences[0])
    }

    /// Step t's last-stage value (argmax of the logits) written into layer 0 at step t + 1: a value
    /// that crosses stages backwards, through the coordinator.
    @Test(arguments: [1, 2, 3]) func editDependsOnTheLastStageAtThePreviousStep(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var output: Saved!, written: SavedList!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            written = tracer.list().save()
            var previous: TraceValue?
            for _ in tracer.iter[0..<3] {
                if let previous {
                    model.transformer.h[0].output[0][.all, -1, .slice(0, 1)] = previous
                    written.append(model.transformer.h[0].output[0][.all, -1, .slice(0, 1)])
                }
                previous = model.lmHead.output[.all, -1, .slice(0, 1)].max() / 10
            }
            output = model.generator.output.save()
        }
        // Reference: the same dataflow with Engine hooks in one process.
        final class Reference: HookHandler {
            var carried: Float?
            var written: [Float] = []
            func wants(_ p: HookPoint) -> Bool { p == HookPoint(.block(0), .output) || p == HookPoint(.lmHead, .output) }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                guard case let .floats(b, shape) = v else { return }
                let (T, C) = (shape[1], shape[2])
                if p.module == .block(0), let carried {
                    b[(T - 1) * C] = carried
                    written.append(carried)
                } else if p.module == .lmHead {
                    carried = b[(T - 1) * shape[2]] / 10
                }
            }
        }
        let reference = Reference()
        let pipeline = try Pipeline(directory: Oracle.model)
        let expected = try pipeline.generate(prompts: [model.tokenizer.encode(Oracle.p1)],
                                             GenerationParameters(maxNewTokens: 3, eosTokenId: 1999, padTokenId: 1999)) { _ in reference }
        #expect(try output.value.ints == expected.sequences[0])
        #expect(written.count == 2)
        for (i, value) in written.items.enumerated() { #expect(abs(value.floats[0] - reference.written[i]) <= 1e-5) }
    }

    @Test func samplingWithASeedIsReproducible() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 2)
        func run(seed: UInt64) throws -> [Int] {
            var output: Saved!
            try model.generate(Oracle.p1, maxNewTokens: 8, sampling: SamplingParameters(temperature: 1.2, topK: 50, seed: seed)) { _ in
                output = model.generator.output.save()
            }
            return try output.value.ints
        }
        #expect(try run(seed: 3) == run(seed: 3))
        #expect(try run(seed: 3) != run(seed: 4))
        // The same sampler as the Engine's own generation loop.
        let pipeline = try Pipeline(directory: Oracle.model)
        let expected = try pipeline.generate(prompts: [model.tokenizer.encode(Oracle.p1)], GenerationParameters(
            maxNewTokens: 8, sampling: SamplingParameters(temperature: 1.2, topK: 50, seed: 3), eosTokenId: 1999, padTokenId: 1999))
        #expect(try run(seed: 3) == expected.sequences[0])
    }

    /// Generation that stops at eos leaves later steps unreached: their saves say so, and the
    /// values of the steps that ran are all there.
    @Test func unreachedStepsSaySo() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 2)
        var early: Saved!, late: Saved!, output: Saved!, all: SavedList!
        // Greedy continuation of p1 is [1052, 808, ...]: with 808 as eos, generation stops after step 1.
        try model.generate(Oracle.p1, maxNewTokens: 5, eosTokenId: 808) { tracer in
            all = tracer.list().save()
            for _ in tracer.all() { all.append(model.lmHead.output[0, -1].argmax(dim: -1)) }
            for _ in tracer.iter[1] { early = model.transformer.h[0].output[0].save() }
            for _ in tracer.iter[3] { late = model.transformer.h[0].output[0].save() }
            output = model.generator.output.save()
        }
        #expect(try output.value.ints.suffix(2) == [1052, 808])
        #expect(try early.value.shape == [1, 1, 64])
        #expect(throws: TraceError.stepNotReached(step: 3)) { try late.value }
        #expect(all.items.map { $0.ints[0] } == [1052, 808])
        #expect(TraceError.stepNotReached(step: 3).description == "step 3 was not reached (generation stopped before it)")
    }
}
