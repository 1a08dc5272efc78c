import Coordinator
import Engine
import Foundation
import Testing
import Worker

/// Every case of the oracle, written with the Swift API, on 1, 2 and 3 pipeline stages.
@Suite(.serialized) struct OracleCaseTests {
    static let stageCounts = [1, 2, 3]

    @Test(arguments: stageCounts) func generateBasic(stages: Int) throws {
        let golden = try Oracle.saves("generate_basic")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var output: Saved!, result: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { tracer in
            output = model.generator.output.save()
            result = tracer.result.save()
        }
        try Oracle.expectMatch(try output.value, golden["output"], "output")
        try Oracle.expectMatch(try result.value, golden["result"], "result")
        #expect(model.tokenizer.encode(Oracle.p1) == (golden["prompt_ids"] as? [Int]))
    }

    @Test(arguments: stageCounts) func iterSlice(stages: Int) throws {
        let golden = try Oracle.saves("iter_slice")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var tokens: SavedList!, output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { tracer in
            tokens = tracer.list().save()
            for _ in tracer.iter[1..<3] {
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()
        }
        let expected = try Oracle.list(golden["tokens"])
        #expect(tokens.count == expected.count)
        for (i, t) in tokens.items.enumerated() { try Oracle.expectMatch(t, expected[i], "tokens[\(i)]") }
        try Oracle.expectMatch(try output.value, golden["output"], "output")
    }

    @Test(arguments: stageCounts) func iterAll(stages: Int) throws {
        let golden = try Oracle.saves("iter_all")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var tokens: SavedList!, logitMax: SavedList!, after: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 4) { tracer in
            tokens = tracer.list().save()
            logitMax = tracer.list().save()
            for _ in tracer.iter[...] {
                let logits = model.lmHead.output[0, -1]
                tokens.append(logits.argmax(dim: -1))
                logitMax.append(logits.max())
            }
            // nnsight never runs this line (it waits for a 5th step); we do.
            after = model.lmHead.output.save()
        }
        for (name, list) in [("tokens", tokens!), ("logit_max", logitMax!)] {
            let expected = try Oracle.list(golden[name])
            #expect(list.count == expected.count)
            for (i, t) in list.items.enumerated() { try Oracle.expectMatch(t, expected[i], "\(name)[\(i)]") }
        }
        // Step 0 (the cursor): a generation's prompt pass runs lm_head at the last position only,
        // as transformers' generate does (logits_to_keep=1).
        #expect(try after.value.shape == [1, 1, 2000])
    }

    @Test(arguments: stageCounts) func condStep0Zero(stages: Int) throws {
        let golden = try Oracle.saves("cond_step0_zero")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var tokens: SavedList!, sums: SavedList!, output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            tokens = tracer.list().save()
            sums = tracer.list().save()
            for step in tracer.iter[0..<3] {
                if step == 0 {
                    model.transformer.h[0].output[0][.all] = 0
                }
                sums.append(model.transformer.h[0].output[0].abs().sum())
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()
        }
        for (name, list) in [("tokens", tokens!), ("h0_sums", sums!)] {
            let expected = try Oracle.list(golden[name])
            #expect(list.count == expected.count)
            for (i, t) in list.items.enumerated() { try Oracle.expectMatch(t, expected[i], "\(name)[\(i)]") }
        }
        try Oracle.expectMatch(try output.value, golden["output"], "output")
    }

    @Test(arguments: stageCounts) func perStepHidden(stages: Int) throws {
        let golden = try Oracle.saves("per_step_hidden")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var h: [Saved] = [], output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            for s in 0..<3 {
                for _ in tracer.iter[s] { h.append(model.transformer.h[-1].output[0].save()) }
            }
            output = model.generator.output.save()
        }
        for (i, name) in ["h_step0", "h_step1", "h_step2"].enumerated() { try Oracle.expectMatch(try h[i].value, golden[name], name) }
        try Oracle.expectMatch(try output.value, golden["output"], "output")
    }

    /// `tracer.next()` (gone from nnsight 0.8.1, shown in its documentation) reads the same values.
    @Test(arguments: stageCounts) func nextMatchesPerStepHidden(stages: Int) throws {
        let golden = try Oracle.saves("per_step_hidden")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var hs0: Saved!, hs1: Saved!, hs2: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            hs0 = model.transformer.h[-1].output[0].save()
            tracer.next()
            hs1 = model.transformer.h[-1].output[0].save()
            tracer.next()
            hs2 = model.transformer.h[-1].output[0].save()
        }
        try Oracle.expectMatch(try hs0.value, golden["h_step0"], "step 0")
        try Oracle.expectMatch(try hs1.value, golden["h_step1"], "step 1")
        try Oracle.expectMatch(try hs2.value, golden["h_step2"], "step 2")
    }

    @Test(arguments: stageCounts) func allZeroH0(stages: Int) throws {
        let golden = try Oracle.saves("all_zero_h0")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var hidden: SavedList!, steps: [Int] = [], output: Saved!
        try model.generate(maxNewTokens: 4) { tracer in
            tracer.invoke(Oracle.p1) {
                hidden = tracer.list().save()
                for step in tracer.all() {
                    model.transformer.h[0].output[0][.all, -1, .all] = 0
                    hidden.append(model.transformer.h[-1].output[0])
                    steps.append(step)
                }
            }
            tracer.invoke {
                output = model.generator.output.save()
            }
        }
        #expect(steps == (golden["steps"] as? [Int]))
        let expected = try Oracle.list(golden["hidden"])
        #expect(hidden.count == expected.count)
        for (i, t) in hidden.items.enumerated() { try Oracle.expectMatch(t, expected[i], "hidden[\(i)]") }
        try Oracle.expectMatch(try output.value, golden["output"], "output")
    }

    @Test(arguments: stageCounts) func traceBasic(stages: Int) throws {
        let golden = try Oracle.saves("trace_basic")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var saves: [String: Saved] = [:]
        try model.trace(Oracle.p1) { tracer in
            let h = model.transformer.h
            saves["embed"] = model.transformer.wte.output.save()
            saves["h0_attn"] = h[0].attn.output[0].save()
            saves["h0_mlp"] = h[0].mlp.output.save()
            saves["h0"] = h[0].output[0].save()
            saves["h1_attn"] = h[1].attn.output[0].save()
            saves["h1_mlp"] = h[1].mlp.output.save()
            saves["h1"] = h[1].output[0].save()
            saves["h_last"] = h[-1].output[0].save()
            saves["ln_f"] = model.transformer.lnF.output.save()
            saves["logits"] = model.lmHead.output.save()
            saves["next_token"] = model.lmHead.output[0, -1].argmax(dim: -1).save()
        }
        for (name, saved) in saves { try Oracle.expectMatch(try saved.value, golden[name], name) }
    }

    @Test(arguments: stageCounts) func batchedInvokes(stages: Int) throws {
        let golden = try Oracle.saves("batched_invokes")
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        var lists: [String: SavedList] = [:], saves: [String: Saved] = [:]
        try model.generate(maxNewTokens: 4) { tracer in
            for (suffix, prompt) in [("a", Oracle.p1), ("b", "Hello world")] {
                tracer.invoke(prompt) {
                    let tokens = tracer.list().save(), last = tracer.list().save()
                    for _ in tracer.iter[0..<4] {
                        last.append(model.transformer.h[-1].output[0][.all, -1, .all])
                        tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
                    }
                    saves["output_" + suffix] = model.generator.output.save()
                    lists["tokens_" + suffix] = tokens
                    lists["last_" + suffix] = last
                }
            }
            tracer.invoke {
                let inputs = model.transformer.inputs
                saves["input_ids"] = inputs.inputIds.save()
                saves["attention_mask"] = inputs.attentionMask.save()
                saves["position_ids"] = inputs.positionIds.save()
                saves["output"] = model.generator.output.save()
            }
        }
        for (name, list) in lists {
            let expected = try Oracle.list(golden[name])
            #expect(list.count == expected.count, "\(name)")
            for (i, t) in list.items.enumerated() { try Oracle.expectMatch(t, expected[i], "\(name)[\(i)]") }
        }
        for (name, saved) in saves { try Oracle.expectMatch(try saved.value, golden[name], name) }
    }
}
