import Coordinator
import Foundation
@testable import Script
import Testing

/// Mistakes with modules (issue 13): an unknown submodule lists the children, parameters are
/// read-only, a skipped module's submodules cannot be used, calls and reads that cannot run say
/// why; each message names the script's line:column.
@Suite(.serialized) struct ModuleErrorTests {
    static let model = Goldens.fixtures + "/models/tiny-gpt2"

    func runError(_ source: String, stages: Int = 1) throws -> ScriptError? {
        let model = try LanguageModel.load(Self.model, stages: stages)
        return ScriptRunner(model: model, file: "t.py").run(source: source).error
    }

    static let prompt = "with model.trace(\"The Eiffel Tower is in the city of\") as tracer:\n"

    @Test(arguments: [
        // An unknown submodule lists the valid children (and parameters).
        (prompt + "    x = model.transformer.h[0].mlp.fc1.output.save()\n", 2, 9,
         "model.transformer.h[0].mlp has no submodule 'fc1' (its submodules: c_fc, c_proj, act, dropout)"),
        (prompt + "    x = model.transformer.h[1].attn.q_proj.output.save()\n", 2, 9,
         "(its submodules: c_attn, c_proj, attn_dropout, resid_dropout)"),
        (prompt + "    x = model.transformer.ln_f.gamma\n", 2, 9, "it has no submodules; parameters: weight, bias"),
        // Parameters are read-only, whichever way they are written.
        (prompt + "    model.lm_head.weight[:] = 0\n", 2, 5, "read-only"),
        (prompt + "    model.transformer.h[0].ln_1.weight = model.transformer.h[0].ln_1.weight * 2\n", 2, 5,
         "model.transformer.h[0].ln_1.weight is a parameter of the model: read-only"),
        (prompt + "    w = model.transformer.h[0].mlp.c_fc.bias\n    w += 1\n", 3, 5, "read-only"),
        // A skipped block's submodules do not run.
        (prompt + "    model.transformer.h[1].skip(model.transformer.h[0].output)\n    model.transformer.h[1].mlp.skip(model.transformer.h[0].output)\n", 3, 5,
         "transformer.h[1].mlp does not run at step 0: it is inside transformer.h[1], which is skipped (skipped at line 2:5)"),
        (prompt + "    model.transformer.h[2].attn.skip(model.transformer.h[2].attn.input)\n    q = model.transformer.h[2].attn.c_attn.output.save()\n", 3, 9,
         "transformer.h[2].attn.c_attn does not run at step 0: it is inside transformer.h[2].attn, which is skipped"),
        (prompt + "    model.transformer.h[0].ln_1.skip(model.transformer.h[0].ln_1.input)\n", 2, 5,
         "only a block (transformer.h[i]), its attn or its mlp can be skipped"),
        // Modules that cannot be called ad hoc, and shapes that do not fit.
        (prompt + "    y = model.transformer.h[0](model.transformer.h[0].input)\n", 2, 9,
         "transformer.h[0] cannot be called on a value: it needs the KV cache and attention mask"),
        (prompt + "    y = model.lm_head(model.transformer.h[0].mlp.c_fc.output)\n", 2, 9, "lm_head expects a last dimension of 64, got a tensor of shape [1, 12, 256]"),
        // sdpa attention never calls attn_dropout: nnsight reports the read as out of order.
        (prompt + "    a = model.transformer.h[0].attn.attn_dropout.output.save()\n", 2, 9,
         "'model.transformer.h.0.attn.attn_dropout.output' was requested but the model already ran past it"),
    ] as [(String, Int, Int, String)])
    func moduleMistakesNameTheLine(source: String, line: Int, column: Int, fragment: String) throws {
        let error = try #require(try runError(source), "no error for \(source)")
        #expect(error.line == line && error.column == column, "\(error)")
        #expect(error.description.contains(fragment), "\(error)")
    }

    /// On a pipeline, a module call whose argument only exists later in the step (on a later
    /// stage) than the module's weights is refused with both ends named; on one stage it runs.
    @Test func aCallBeforeItsArgumentExistsOnAPipelineSaysWhy() throws {
        let source = Self.prompt + "    y = model.transformer.h[0].mlp(model.transformer.h[3].output[0]).save()\n"
        #expect(try runError(source, stages: 1) == nil)
        let error = try #require(try runError(source, stages: 2))
        #expect(error.line == 2 && error.column == 9, "\(error)")
        #expect(error.description.contains("runs on the stage holding its weights (stage 0), but its argument comes from transformer.h[3].output at step 0 on stage 1"), "\(error)")
    }

    /// Code between a session's traces computes on what the earlier traces produced (those
    /// traces run then, as nnsight runs each trace when its block ends), and a later trace of the
    /// session uses the result (the session's remaining traces run as one submission).
    @Test func aSessionComputesBetweenItsTraces() throws {
        let source = """
        import torch
        with model.session() as session:
            with model.trace("Hello world") as t1:
                v = model.transformer.h[1].output[0][0, -1].save()
            w = v * 2
            print(w.shape)
            with model.trace("Hello world") as t2:
                model.transformer.h[1].output[0][0, -1] = w
                x = model.transformer.h[1].output[0][0, -1].save()
        print(torch.equal(x, 2 * v), torch.equal(x, v))
        """
        let model = try LanguageModel.load(Self.model, stages: 2)
        let outcome = ScriptRunner(model: model, file: "t.py").run(source: source + "\n")
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        #expect(outcome.stdout == "torch.Size([64])\nTrue False\n")
    }
}
