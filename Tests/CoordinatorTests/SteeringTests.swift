import Coordinator
import Engine
import Foundation
import Script
import Testing

/// The steering script that used to take the coordinator down (a vector saved in one trace,
/// added at every step of a later generate with an invoke and an input-less invoke): it runs, in
/// process and on worker processes, and steers exactly as the Engine's own hooks do.
@Suite(.serialized) struct SteeringTests {
    static let prompt = "The Eiffel Tower is in the city of"
    static let steps = 4

    /// Adds `3 * vec` to every position of h[2]'s output at every step.
    final class Steer: HookHandler {
        let vec: [Float]
        init(_ vec: [Float]) { self.vec = vec }
        func wants(_ p: HookPoint) -> Bool { p == HookPoint(.block(2), .output) }
        func visit(_ p: HookPoint, _ v: HookValue) throws {
            guard case let .floats(b, shape) = v else { return }
            let C = shape[2]
            for i in 0..<(b.count / C) { for c in 0..<C { b[i * C + c] += 3 * vec[c] } }
        }
    }

    static func steer(_ model: LanguageModel) throws -> (vec: [Float], steered: [Int]) {
        var vec: Saved!
        try model.generate(prompt, maxNewTokens: 2) { _ in vec = model.transformer.h[2].output[0][0, -1].save() }
        let saved = try #require(vec)
        let value = try saved.value.floats
        var output: Saved!
        try model.generate(maxNewTokens: steps) { tracer in
            tracer.invoke(prompt) {}
            tracer.invoke {
                for _ in tracer.all() {
                    let hidden = model.transformer.h[2].output[0]
                    hidden[.all] = hidden[.all] + TraceValue.constant(3.0) * vecValue(saved)
                }
                output = model.generator.output.save()
            }
        }
        return (value, try output.value[0].ints)
    }

    /// The saved vector as the later trace uses it (its TraceValue is gone: the saved value enters as a constant).
    static func vecValue(_ saved: Saved) -> TraceValue { (try? .constant(saved.value)) ?? 0 }

    static func expected(_ vec: [Float]) throws -> (steered: [Int], plain: [Int]) {
        let pipeline = try Pipeline(directory: Oracle.model)
        let ids = try GPT2Tokenizer(directory: Oracle.model).encode(prompt)
        let parameters = GenerationParameters(maxNewTokens: steps, eosTokenId: 1999, padTokenId: 1999)
        let steered = try pipeline.generate(prompts: [ids], parameters) { _ in Steer(vec) }
        let plain = try pipeline.generate(prompts: [ids], parameters)
        return (steered.sequences[0], plain.sequences[0])
    }

    @Test(arguments: [1, 2]) func steeringInProcessMatchesEngineHooks(stages: Int) throws {
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        let (vec, steered) = try Self.steer(model)
        let expected = try Self.expected(vec)
        #expect(steered == expected.steered)
        #expect(expected.steered != expected.plain, "the steering must change the tokens for this test to mean anything")
    }

    @Test func steeringOnTwoWorkerProcessesMatchesEngineHooks() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: ProcessClusterTests.workerExecutable,
                                         transport: "tcp", threadsPerWorker: 1)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        let (vec, steered) = try Self.steer(model)
        #expect(steered == (try Self.expected(vec)).steered)
        // The coordinator still serves.
        var output: Saved!
        try model.generate(Self.prompt, maxNewTokens: 2) { _ in output = model.generator.output.save() }
        #expect(try output.value.shape == [1, model.tokenizer.encode(Self.prompt).count + 2])
    }

    /// The script as a researcher writes it, the vector's TraceValue reused from the first trace.
    @Test(arguments: [1, 2]) func steeringScriptRuns(stages: Int) throws {
        let source = """
        with model.generate("\(Self.prompt)", max_new_tokens=2) as tracer:
            vec = model.transformer.h[2].output[0][0, -1].save()
        with model.generate(max_new_tokens=\(Self.steps)) as tracer:
            with tracer.invoke("\(Self.prompt)"):
                pass
            with tracer.invoke():
                for step in tracer.all():
                    model.transformer.h[2].output[0][:] += 3.0 * vec
                out = model.generator.output.save()
        print(out[0].tolist())
        """
        let model = try LanguageModel.load(Oracle.model, stages: stages)
        let outcome = ScriptRunner(model: model, file: "steer.py").run(source: source)
        #expect(outcome.error == nil, "\(String(describing: outcome.error))")
        let (vec, _) = try Self.steer(model)
        let expected = try Self.expected(vec).steered
        #expect(outcome.stdout == "\(expected)\n")
    }
}
