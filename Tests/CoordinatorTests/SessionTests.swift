import Coordinator
import Engine
import Foundation
import Testing

/// `model.session { }`: the traces recorded in it run as one submission, back to back, with the
/// values one saves feeding the next on the coordinator.
@Suite(.serialized) struct SessionTests {
    static let prompt = "The Eiffel Tower is in the city of"

    /// A steering vector from one trace added at every step of a later generation, and an
    /// activation patch from a clean run into a corrupted one, on 3 worker processes: one
    /// submission, and the same tokens and logits as the same traces run one by one.
    @Test func aSessionIsOneSubmissionWithTheResultsOfSeparateTraces() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 3, workerExecutable: ProcessClusterTests.workerExecutable,
                                         threadsPerWorker: 1)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        var steer: Saved!, steered: Saved!, clean: Saved!, patched: Saved!
        func record() throws {
            try model.trace("Hello world") { _ in steer = model.transformer.h[1].output[0][0, -1].save() }
            try model.generate(Self.prompt, maxNewTokens: 3) { tracer in
                for _ in tracer.iter[0..<3] {
                    let h = model.transformer.h[1].output[0]
                    h[.all, -1] = h[.all, -1] + TraceValue.saved(steer)
                }
                steered = model.generator.output.save()
            }
            try model.trace(Self.prompt) { _ in clean = model.transformer.h[1].output[0].save() }
            try model.trace("The Colosseum is in the city of") { _ in
                let h = model.transformer.h[1].output[0]
                h[.all, -1] = TraceValue.saved(clean)[.all, -1]
                patched = model.lmHead.output[0, -1].save()
            }
        }
        let before = cluster.submissions
        try model.session { try record() }
        #expect(cluster.submissions - before == 1)
        let sessionResults = (try steered.value.ints, try patched.value.floats)

        let separate = cluster.submissions
        try record()
        #expect(cluster.submissions - separate == 4)
        #expect(try steered.value.ints == sessionResults.0)
        #expect(try patched.value.floats == sessionResults.1)
        #expect(try steered.value.ints.count == 12 + 3)
    }

    /// A session value read before the session has run says when it will exist.
    @Test func aValueOfAPendingSessionSaysItHasNotRun() throws {
        let model = try LanguageModel.load(Oracle.model)
        var saved: Saved!
        try model.session {
            try model.trace("Hello") { _ in saved = model.transformer.h[0].output[0].save() }
            #expect(throws: TraceError.self) { _ = try saved.value }
        }
        #expect(try saved.value.shape == [1, model.tokenizer.encode("Hello").count, 64])
    }
}
