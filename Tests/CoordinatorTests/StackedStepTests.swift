import Coordinator
import Engine
import Foundation
import Testing

/// Stages run the steps of traces that are ready at the same time as one stacked pass (issue
/// 14's continuous batching, first piece): concurrent traces still get exactly their own results
/// (ClusterTests.eightConcurrentClientsGetExactlyTheirOwnResults), and one trace failing in a
/// shared pass ends alone.
@Suite(.serialized) struct StackedStepTests {
    /// A trace whose graph fails at step 2 on the first stage: an index computed from the
    /// activations (1000, past the hidden size) into a 64-wide vector.
    static func failing(_ model: LanguageModel) throws {
        try model.generate(Oracle.p1, maxNewTokens: 5) { tracer in
            for step in tracer.iter[...] {
                let hidden = model.transformer.h[0].output[0][0, -1]
                if step == 2 {
                    let index = TraceValue.apply("to", [hidden[.slice(0, 1)] * 0.0 + 1000.0], Attributes(["dtype": .string("int64")]))
                    _ = TraceValue.apply("take", [hidden, index], Attributes(["dim": .int(0)])).save()
                }
            }
        }
    }

    @Test func aTraceFailingInASharedPassEndsAloneWhileTheOthersFinish() throws {
        let local = try LanguageModel.load(Oracle.model, stages: 2)
        let expected = try (1..<4).map { try ClusterTests.trace(local, client: $0) }
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: ProcessClusterTests.workerExecutable, threadsPerWorker: 1)
        defer { cluster.stop() }
        let results = try #require(ClusterTests.concurrently(4, on: cluster.endpoint) { i, client in
            if i == 0 { try StackedStepTests.failing(client); return [] }
            return try ClusterTests.trace(client, client: i)
        }, "the clients did not all finish")
        switch results[0] {
        case let .failure(error as TraceError)?:
            #expect(error.kind == .runtime && error.step == 2, "\(error)")
            #expect(error.description.contains("out of"), "\(error)")
        default: Issue.record("the failing trace did not fail: \(String(describing: results[0]))")
        }
        for i in 1..<4 {
            let got = try #require(results[i]).get()
            #expect(got.count == expected[i - 1].count)
            #expect(zip(got, expected[i - 1]).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) }, "client \(i)")
        }
    }
}
