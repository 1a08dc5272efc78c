@testable import Coordinator
import Engine
import Graph
import Testing
import Wire

/// The coordinator's record of a trace: what it sends first, what each step result changes.
struct TraceSessionTests {
    func session(prompts: [[Int]], steps: Int, eos: Int? = nil) -> TraceSession {
        let compiled = CompiledTrace(fragments: [TraceGraph(nodes: [
            GraphNode(id: 1, steps: [1], kind: .read(ModuleRead(.mlp(0), .output)), at: HookPoint(.mlp(0), .output)),
            GraphNode(id: 2, steps: [1], kind: .save(node: 1, saveID: 2), at: HookPoint(.mlp(0), .output)),
        ], invokes: prompts, generation: GenerationSpec(maxNewTokens: steps))], clientNodes: [], types: [:])
        return TraceSession(id: 9, compiled: compiled, prompts: prompts, generation: GenerationSpec(maxNewTokens: steps, eosTokenId: eos, padTokenId: 0))
    }

    func result(_ step: Int, _ tokens: [Int64], _ finished: [Bool]) -> Nnsight_V1_StepResult {
        .with { $0.step = UInt32(step); $0.nextTokens = tokens; $0.finished = finished }
    }

    @Test func recordsEachStepsInputsAndStopsAtMaxNewTokens() throws {
        let s = session(prompts: [[5, 6, 7], [8]], steps: 2)
        #expect(s.firstActivations().activations.mask.shape == [2, 3])
        #expect(try s.accept(result(0, [11, 12], [false, false])))
        #expect(!(try s.accept(result(1, [13, 14], [false, false]))))
        let outcome = s.outcome
        #expect(outcome.sequences == [[5, 6, 7, 11, 13], [0, 0, 8, 12, 14]])
        #expect(outcome.inputs[0].positions == [[0, 1, 2], [0, 0, 0]] && outcome.inputs[0].mask == [[1, 1, 1], [0, 0, 1]])
        #expect(outcome.inputs[1].tokens == [[11], [12]] && outcome.inputs[1].positions == [[3], [1]] && outcome.inputs[1].mask == [[1], [1]])
        #expect(outcome.steps == 2)
    }

    @Test func eosAsTheLastStageReportsIt() throws {
        let s = session(prompts: [[5]], steps: 5, eos: 7)
        #expect(try s.accept(result(0, [7], [false])), "the sampler's flag decides, not the token")
        #expect(!(try s.accept(result(1, [7], [true]))))
        #expect(s.outcome.steps == 2)
    }

    @Test func savesArriveForTheStepsThatRan() throws {
        let s = session(prompts: [[5]], steps: 3)
        _ = try s.accept(result(0, [1], [false]))
        #expect(s.allSavesArrived, "no save is due at step 0")
        _ = try s.accept(result(1, [1], [false]))
        #expect(!s.allSavesArrived)
        s.received += 1
        #expect(s.allSavesArrived)
    }

    @Test func aMalformedResultIsATypedError() throws {
        let s = session(prompts: [[5]], steps: 3)
        #expect(throws: TraceError(.transport, "the last stage sent 2 tokens for step 0, the batch has 1 rows", step: 0)) {
            try s.accept(result(0, [1, 2], [false]))
        }
        #expect(throws: TraceError(.transport, "the last stage sent 0 eos flags for step 0, the batch has 1 rows", step: 0)) {
            try s.accept(result(0, [1], []))
        }
    }
}
