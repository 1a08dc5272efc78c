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

    /// Four different long traces (each its own prompt, length, edit step and layers read).
    static func long(_ model: LanguageModel, _ i: Int) throws -> [Double] {
        var output: Saved!, hidden: SavedList!
        try model.generate(["The city of", "Hello world", Oracle.p1, "Tower"][i], maxNewTokens: 24 - 4 * i) { tracer in
            hidden = tracer.list().save()
            for step in tracer.all() {
                if step == i { model.transformer.h[i].output[0][.all, -1, .all] = model.transformer.h[i].output[0][.all, -1, .all] * 0.5 }
                hidden.append(model.transformer.h[3 - i].output[0][.all, -1, .slice(0, 8)])
            }
            output = model.generator.output.save()
        }
        return try output.value.doubles + hidden.items.flatMap(\.doubles)
    }

    /// A trace that arrives while three others are mid-generation joins their passes at a step
    /// boundary (its prompt pass alongside their decode steps) and every trace gets exactly what
    /// it gets alone.
    @Test func aTraceJoiningMidGenerationAndTheRunningOnesGetTheirSoloResults() throws {
        let local = try LanguageModel.load(Oracle.model, stages: 2)
        let expected = try (0..<4).map { try Self.long(local, $0) }
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: ProcessClusterTests.workerExecutable, threadsPerWorker: 1)
        defer { cluster.stop() }
        final class Started: @unchecked Sendable {
            let midway = DispatchSemaphore(value: 0)
        }
        let started = Started()
        let results = try #require(ClusterTests.concurrently(4, on: cluster.endpoint) { i, client in
            if i == 3 {
                // Joins once trace 0 has produced its 6th token (it runs 24).
                started.midway.wait()
                return try StackedStepTests.long(client, 3)
            }
            if i == 0 {
                client.onEvent = { event in
                    if case let .tokens(step, _) = event, step == 5 { started.midway.signal() }
                }
            }
            return try StackedStepTests.long(client, i)
        }, "the clients did not all finish")
        for i in 0..<4 {
            let got = try #require(results[i]).get()
            #expect(got.count == expected[i].count, "client \(i)")
            #expect(zip(got, expected[i]).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) }, "client \(i)")
        }
    }
}
