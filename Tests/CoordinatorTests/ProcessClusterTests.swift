import Coordinator
import Engine
import Foundation
import Testing
import Worker

/// Real worker processes over tcp and ipc, driven by a coordinator.
@Suite(.serialized) struct ProcessClusterTests {
    static let workerExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("nnsight-worker")

    @Test(arguments: ["tcp", "ipc"], [1, 2, 3])
    func oracleCasesOnWorkerProcesses(transport: String, workers: Int) throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: workers, workerExecutable: Self.workerExecutable,
                                         transport: transport, threadsPerWorker: 1)
        defer { cluster.stop() }
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        // generate_basic, cond_step0_zero, per_step_hidden and batched_invokes through the cluster.
        var output: Saved!, tokens: SavedList!, sums: SavedList!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            tokens = tracer.list().save()
            sums = tracer.list().save()
            for step in tracer.iter[0..<3] {
                if step == 0 { model.transformer.h[0].output[0][.all] = 0 }
                sums.append(model.transformer.h[0].output[0].abs().sum())
                tokens.append(model.lmHead.output[0, -1].argmax(dim: -1))
            }
            output = model.generator.output.save()
        }
        let golden = try Oracle.saves("cond_step0_zero")
        try Oracle.expectMatch(try output.value, golden["output"], "output")
        for (i, t) in sums.items.enumerated() { try Oracle.expectMatch(t, try Oracle.list(golden["h0_sums"])[i], "h0_sums[\(i)]") }
        for (i, t) in tokens.items.enumerated() { try Oracle.expectMatch(t, try Oracle.list(golden["tokens"])[i], "tokens[\(i)]") }

        let hidden = try Oracle.saves("per_step_hidden")
        var h: [Saved] = []
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            h.append(model.transformer.h[-1].output[0].save())
            tracer.next()
            h.append(model.transformer.h[-1].output[0].save())
            tracer.next()
            h.append(model.transformer.h[-1].output[0].save())
        }
        for (i, name) in ["h_step0", "h_step1", "h_step2"].enumerated() { try Oracle.expectMatch(try h[i].value, hidden[name], name) }
    }
}
