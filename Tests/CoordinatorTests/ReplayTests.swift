import Coordinator
import Foundation
import Graph
import Testing

/// A worker killed mid-generation: a spare (`nnsight-worker --standby`) takes over its layers,
/// the coordinator replays the trace on the new stage set, and the client gets exactly the
/// undisturbed run's ids and saves, each delivered once. Real worker processes, SIGKILL.
@Suite(.serialized) struct ReplayTests {
    static let workerExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("nnsight-worker")

    struct Run: Equatable {
        var ids: [Int]
        var sums: [[Float]]
        var tokens: [[Int]]
        /// Steps the client was told of, in order (each exactly once).
        var steps: [Int]
    }

    /// 40 new tokens; an edit at step 3 (so the KV cache of later steps depends on it), a sum and
    /// a token saved at every step; `onStep` sees each step's tokens as they arrive.
    static func trace(_ model: LanguageModel, onStep: @escaping (Int) -> Void = { _ in }) throws -> Run {
        var steps: [Int] = []
        model.onEvent = { event in
            if case let .tokens(step, _) = event {
                steps.append(step)
                onStep(step)
            }
        }
        defer { model.onEvent = nil }
        var output: Saved!, sums: SavedList!, tokens: SavedList!
        try model.generate(Oracle.p1, maxNewTokens: 40) { tracer in
            sums = tracer.list().save()
            tokens = tracer.list().save()
            for step in tracer.iter[0..<40] {
                if step == 3 { model.transformer.h[1].output[0][.all] = 0 }
                sums.append(model.transformer.h[2].output[0].abs().sum())
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()
        }
        return Run(ids: try output.value.ints, sums: sums.items.map(\.floats), tokens: tokens.items.map(\.ints), steps: steps)
    }

    @Test func aWorkerKilledAtARandomStepIsReplacedAndTheTraceFinishesAsIfUndisturbed() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 3, workerExecutable: Self.workerExecutable, threadsPerWorker: 1,
                                         workerTimeoutMs: 3000, standby: 1)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        let undisturbed = try Self.trace(model)
        #expect(undisturbed.steps == Array(0..<40))
        for round in 0..<5 {
            let killAt = Int.random(in: 1..<38), stage = Int.random(in: 0..<3)
            let id = try #require(cluster.statistics.serving[stage], "stage \(stage) has no worker")
            let index = try #require(Int(id.split(separator: "-")[1]))
            let victim = cluster.processes[index]
            var killed: Date?, arrivals: [Date] = []
            let run = try Self.trace(model) { step in
                arrivals.append(Date())
                if step == killAt, killed == nil {
                    kill(victim.processIdentifier, SIGKILL)
                    killed = Date()
                }
            }
            #expect(killed != nil && !victim.isRunning, "round \(round): the worker of stage \(stage) was not killed at step \(killAt)")
            #expect(run == undisturbed, "round \(round): killed stage \(stage) at step \(killAt)")
            // The disruption: the longest wait between two steps the client saw.
            let gap = zip(arrivals, arrivals.dropFirst()).map { $1.timeIntervalSince($0) }.max() ?? 0
            print("replay: stage \(stage) killed at step \(killAt); longest wait between steps \(Int(gap * 1000)) ms")
            #expect(cluster.statistics.serving.count == 3 && cluster.statistics.serving[stage] != id)
            try cluster.startStandby()  // a spare for the next round
        }
    }

    @Test func withoutAReplacementTheTraceEndsWithTheWorkersErrorAfterTheReplayTimeout() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1,
                                         workerTimeoutMs: 3000, replayTimeoutMs: 2000)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        let victim = cluster.processes[1]
        var killed: Date?
        #expect {
            _ = try Self.trace(model) { step in
                if step == 5, killed == nil { kill(victim.processIdentifier, SIGKILL); killed = Date() }
            }
        } throws: { error in
            "\(error)".contains("stopped answering at step")
        }
        let waited = Date().timeIntervalSince(try #require(killed))
        #expect(waited > 4.5 && waited < 12, "\(waited) s")  // 3 s to notice the death, 2 s waiting for a replacement
    }
}
