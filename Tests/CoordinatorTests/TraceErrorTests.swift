import Coordinator
import Engine
import Foundation
import Testing
import Worker

/// Bad traces fail with a message naming what was wrong, and the model serves the next trace.
@Suite(.serialized) struct TraceErrorTests {
    func expectError(_ model: LanguageModel, containing fragments: [String], _ body: (Tracer) throws -> Void,
                     sourceLocation: SourceLocation = #_sourceLocation) throws {
        do {
            try model.generate(Oracle.p1, maxNewTokens: 3, body)
            Issue.record("the trace succeeded", sourceLocation: sourceLocation)
        } catch {
            let message = "\(error)"
            for fragment in fragments {
                #expect(message.contains(fragment), "\(message.debugDescription) lacks \(fragment.debugDescription)", sourceLocation: sourceLocation)
            }
        }
        // The next trace is unaffected.
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { _ in output = model.generator.output.save() }
        #expect(try output.value.ints.suffix(3) == [1052, 808, 1162], sourceLocation: sourceLocation)
    }

    @Test(arguments: [1, 2]) func unknownLayer(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        try expectError(model, containing: ["transformer.h[40]", "out of range for 4 layers"]) { _ in
            _ = model.transformer.h[40].output[0].save()
        }
    }

    @Test(arguments: [1, 2]) func valueUsedBeforeItCanExist(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        try expectError(model, containing: ["transformer.h[3].output at step 0 is used before it can exist",
                                            "written into transformer.h[0].output at step 0"]) { _ in
            model.transformer.h[0].output[0][.all] = model.transformer.h[3].output[0]
        }
    }

    @Test func stepBeyondMaxNewTokens() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 1)
        try expectError(model, containing: ["step 3 is beyond max_new_tokens = 3"]) { tracer in
            tracer.next(); tracer.next(); tracer.next()
            _ = model.transformer.h[0].output[0].save()
        }
    }

    @Test(arguments: [1, 3]) func indexOutOfRangeAtRunTime(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        // A generation's step-0 logits are the last position's (transformers' logits_to_keep=1).
        try expectError(model, containing: ["at step 0", "lm_head.output", "index 50 is out of bounds for dimension 1 with size 1"]) { _ in
            _ = model.lmHead.output[0, 50].save()
        }
    }

    @Test(arguments: [1, 2]) func shapeMismatchInAnEdit(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        try expectError(model, containing: ["transformer.h[0].output", "value tensor of shape [1, 12, 3] cannot be broadcast to indexing result of shape [1, 12, 64]"]) { _ in
            model.transformer.h[0].output[0][.all] = model.transformer.h[0].mlp.output[.all, .all, .slice(0, 3)]
        }
    }

    @Test func tupleIndexedWrongly() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 1)
        try expectError(model, containing: ["output[1] is None"]) { _ in
            _ = model.transformer.h[0].attn.output[1].save()
        }
        try expectError(model, containing: ["tuple index 1 out of range (size 1)"]) { _ in
            _ = model.transformer.h[0].output[1].save()
        }
    }

    @Test func traceWithoutPrompt() throws {
        let model = try LanguageModel.load(Oracle.model, stages: 1)
        #expect(throws: TraceError.invalidGraph("the trace has no prompt: pass one or call tracer.invoke(prompt)")) {
            try model.generate(maxNewTokens: 2) { _ in }
        }
    }
}
