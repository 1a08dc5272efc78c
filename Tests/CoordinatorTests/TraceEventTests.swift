import Coordinator
import Foundation
import Testing
import Worker

/// Saved values and tokens stream while generation runs.
@Suite(.serialized) struct TraceEventTests {
    @Test func eventsArriveStepByStepOverTheCluster() async throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: ProcessClusterTests.workerExecutable,
                                         threadsPerWorker: 1)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        var tokenSteps: [Int] = [], tokens: [Int] = [], savedSteps: [Int] = []
        for try await event in model.events(Oracle.p1, maxNewTokens: 4, { tracer in
            for _ in tracer.all() { _ = model.transformer.h[-1].output[0].save() }
        }) {
            switch event {
            case let .tokens(step, ids): tokenSteps.append(step); tokens += ids
            case let .saved(_, step, value):
                savedSteps.append(step)
                #expect(value.shape == (step == 0 ? [1, 12, 64] : [1, 1, 64]))
            case .skipped:
                Issue.record("no save is guarded here")
            }
        }
        #expect(tokenSteps == [0, 1, 2, 3])
        #expect(tokens == [1052, 808, 1162, 393])
        #expect(savedSteps.sorted() == [0, 1, 2, 3])
    }

    @Test func eventsInProcessToo() async throws {
        let model = try LanguageModel.load(Oracle.model, stages: 2)
        var count = 0
        for try await event in model.events(Oracle.p1, maxNewTokens: 3, { _ in }) {
            if case .tokens = event { count += 1 }
        }
        #expect(count == 3)
    }
}
