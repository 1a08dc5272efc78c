import Coordinator
import Foundation
import Testing

/// Guards (`if` on a traced value) across pipeline stages: a condition computed on the last
/// stage (lm_head at step 0) gates an edit on the first stage (h[0] at step 1). The guarded run
/// must equal the run that always edits when the condition holds, and the run that never edits
/// when it does not.
@Suite struct GuardTests {
    static let model = Oracle.model

    /// Tokens and the last layer's output at step 2 of a 3-step generation.
    func run(_ model: LanguageModel, _ edit: (Tracer) throws -> Void) throws -> ([Int], Tensor) {
        var tokens: Saved!, last: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            try edit(tracer)
            for _ in tracer.iter[2] { last = model.transformer.h[-1].output[0].save() }
            tokens = model.generator.output.save()
        }
        return (try tokens.value.ints, try last.value)
    }

    @Test(arguments: [1, 2, 3]) func conditionOnTheLastStageGatesAnEditOnTheFirstNextStep(stages: Int) throws {
        let model = try LanguageModel.load(Self.model, stages: stages)
        func guarded(threshold: Double) -> (Tracer) throws -> Void {
            { tracer in
                let condition = TraceValue.apply("gt", [model.lmHead.output[0, -1].max(), .constant(threshold)])
                tracer.next()
                try tracer.when(condition) { model.transformer.h[0].output[0][.all] = 0 }
            }
        }
        let always: (Tracer) throws -> Void = { tracer in
            tracer.next()
            model.transformer.h[0].output[0][.all] = 0
        }
        let (editedTokens, editedLast) = try run(model, always)
        let (plainTokens, plainLast) = try run(model) { _ in }
        #expect(editedTokens != plainTokens, "the edit must change the generation for this test to mean anything")

        let (takenTokens, takenLast) = try run(model, guarded(threshold: -1e9))
        #expect(takenTokens == editedTokens)
        #expect(takenLast == editedLast)
        let (skippedTokens, skippedLast) = try run(model, guarded(threshold: 1e9))
        #expect(skippedTokens == plainTokens)
        #expect(skippedLast == plainLast)
    }

    /// A save inside a branch that does not run is absent; the trace still finishes.
    @Test(arguments: [1, 3]) func aSaveInASkippedBranchIsAbsent(stages: Int) throws {
        let model = try LanguageModel.load(Self.model, stages: stages)
        var inside: Saved!, outside: Saved!
        try model.trace(Oracle.p1) { tracer in
            let never = TraceValue.apply("gt", [model.transformer.h[0].output[0].max(), .constant(1e9)])
            try tracer.when(never) { inside = model.lmHead.output.save() }
            outside = model.lmHead.output.save()
        }
        #expect(!inside.wasReached)
        #expect(inside.skipped)
        #expect(try outside.value.shape == [1, 12, 2000])
    }

    /// A condition computed after the edit it gates (lm_head gating h[1] in the same step) is
    /// harmless while false and an error when true, as nnsight's out-of-order access.
    @Test func aLateConditionFailsOnlyWhenItHolds() throws {
        let model = try LanguageModel.load(Self.model, stages: 2)
        for (threshold, fails) in [(1e9, false), (-1e9, true)] {
            do {
                try model.trace(Oracle.p1) { tracer in
                    let c = TraceValue.apply("gt", [model.lmHead.output.max(), .constant(threshold)])
                    try tracer.when(c) { model.transformer.h[1].output[0][.all] = 0 }
                }
                #expect(!fails)
            } catch let error as TraceError {
                #expect(fails)
                #expect(error.description.contains("was requested but the model already ran past it"), "\(error)")
            }
        }
    }
}
