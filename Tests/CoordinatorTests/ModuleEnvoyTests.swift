import Coordinator
import Engine
import Foundation
import Testing

/// The Swift API of modules (issue 13): calling them on values, parameters, replacing outputs
/// and inputs, skip, stop and cache, each checked against what the same model computes by
/// other means, on a 2-stage pipeline.
@Suite(.serialized) struct ModuleEnvoyTests {
    static func load() throws -> LanguageModel { try LanguageModel.load(Oracle.model, stages: 2) }

    /// The logit lens on the last layer is the model's own logits; lm_head's weight times
    /// ln_f's output is too.
    @Test func callingModulesAndReadingParametersReproduceTheForwardPass() throws {
        let model = try Self.load()
        var lens: Saved!, logits: Saved!, manual: Saved!, gamma: Saved!
        try model.trace(Oracle.p1) { _ in
            let last = model.transformer.h[-1].output[0]
            lens = model.lmHead(model.transformer.lnF(last))[0, -1].save()
            logits = model.lmHead.output[0, -1].save()
            let w = model.lmHead.weight
            manual = TraceValue.apply("matmul", [w, model.transformer.lnF.output[0, -1]]).save()
            gamma = model.transformer.lnF.weight.save()
        }
        let (a, b, c) = (try lens.value.floats, try logits.value.floats, try manual.value.floats)
        #expect(a.count == model.config.vocabSize && b.count == a.count && c.count == a.count)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) < 1e-4 })
        #expect(zip(c, b).allSatisfy { abs($0 - $1) < 1e-3 })
        #expect(try gamma.value.shape == [model.config.nEmbd])
    }

    /// `output = x` replaces a module's output; replacing ln_1's input leaves the residual
    /// stream alone (the block's output differs from an in-place edit of the same tensor).
    @Test func replacingDiffersFromEditingWhereTensorsAreShared() throws {
        let model = try Self.load()
        func run(_ edit: (BlockEnvoy) -> Void) throws -> [Float] {
            var out: Saved!
            try model.trace(Oracle.p1) { _ in
                edit(model.transformer.h[1])
                out = model.transformer.h[1].output[0][0, -1].save()
            }
            return try out.value.floats
        }
        let plain = try run { _ in }
        let replaced = try run { b in b.ln1.input = b.ln1.input * 0.5 }
        let edited = try run { b in b.ln1.input[.all] = b.ln1.input * 0.5 }
        #expect(replaced != plain && edited != replaced)
        var doubled: Saved!, mlp: Saved!
        try model.trace(Oracle.p1) { _ in
            mlp = model.transformer.h[0].mlp.output[0, -1].save()
        }
        try model.trace(Oracle.p1) { _ in
            model.transformer.h[0].mlp.output = model.transformer.h[0].mlp.output * 2
            doubled = model.transformer.h[0].mlp.output[0, -1].save()
        }
        #expect(zip(try doubled.value.floats, try mlp.value.floats).allSatisfy { abs($0 - 2 * $1) < 1e-4 })
    }

    /// A skipped block hands its replacement on: the next block sees it as its input.
    @Test func skipHandsTheValueOn() throws {
        let model = try Self.load()
        var h0: Saved!, h1: Saved!, input2: Saved!
        try model.trace(Oracle.p1) { _ in
            let out0 = model.transformer.h[0].output
            h0 = out0[0][0, -1].save()
            model.transformer.h[1].skip(out0)
            h1 = model.transformer.h[1].output[0][0, -1].save()
            input2 = model.transformer.h[2].input[0, -1].save()
        }
        #expect(try h1.value.floats == h0.value.floats)
        #expect(try input2.value.floats == h0.value.floats)
    }

    /// stop() ends the closure and the generation after the current step; cache() saves every
    /// step's output under nnsight's keys.
    @Test func stopAndCache() throws {
        let model = try Self.load()
        var cache: TraceCache!, after = false, ids: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { tracer in
            cache = tracer.cache(modules: [.module(.block(0)), .model])
            ids = model.generator.output.save()
            for step in tracer.iter[...] where step == 1 { try tracer.stop() }
            after = true
        }
        #expect(!after)
        #expect(cache.keys == ["model.transformer.h.0", "model"])
        let entry = try #require(cache["model.transformer.h.0"])
        #expect(try entry.output(at: 0).shape == [1, 12, 64])
        #expect(try entry.output(at: 1).shape == [1, 1, 64])
        #expect(throws: TraceError.self) { try entry.output(at: 2) }
        // The generation never finished: its output does not exist (as in nnsight).
        #expect(throws: TraceError.self) { try ids.value }
    }

    /// A step stopped on the first stage is reported by that stage, and can reach the
    /// coordinator before the last stage's report of the step before it: the trace still ends
    /// (it used to wait for its deadline). Many runs on 3 stages, each within a minute.
    @Test func aStopOnTheFirstStageNeverHangsThePipeline() throws {
        nonisolated(unsafe) var failure: Error?
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            do {
                // The model lives on this thread (its sockets belong to it).
                let model = try LanguageModel.load(Oracle.model, stages: 3)
                for _ in 0..<40 {
                    var first: Saved!
                    try model.generate(Oracle.p1, maxNewTokens: 4) { tracer in
                        for step in tracer.iter[...] {
                            let h = model.transformer.h[0].output[0][0, -1, 0]
                            if step == 0 { first = h.save() }
                            if step == 1 { try tracer.stop() }
                        }
                    }
                    _ = try first.value
                }
            } catch { failure = error }
            done.signal()
        }
        thread.start()
        #expect(done.wait(timeout: .now() + 60) == .success, "a stopped trace did not finish")
        if let failure { Issue.record(failure) }
    }
}
