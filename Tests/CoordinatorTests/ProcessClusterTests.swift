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

    @Test func cpuListsGiveWorkersCPUsOfTheirOwnWhenTheyFit() {
        #expect(ProcessCluster.cpuLists(workers: 2, threads: 1, cpus: [0, 1]) == [[0], [1]])
        #expect(ProcessCluster.cpuLists(workers: 3, threads: 1, cpus: [0, 1]) == [[0], [1], [0]])
        #expect(ProcessCluster.cpuLists(workers: 3, threads: 2, cpus: [0, 1]) == [[0, 1], [0, 1], [0, 1]])
        #expect(ProcessCluster.cpuLists(workers: 2, threads: 2, cpus: [0, 1, 2, 3]) == [[0, 1], [2, 3]])
        #expect(ProcessCluster.cpuLists(workers: 3, threads: 2, cpus: [0, 1, 2, 3]) == [[0, 1], [2, 3], [0, 1]])
        #expect(ProcessCluster.cpuLists(workers: 2, threads: 8, cpus: [0, 1, 2, 3]) == [[0, 1, 2, 3], [0, 1, 2, 3]])
    }

    /// Only the CPUs this process may use (a container's or `taskset`'s), not 0..<cores.
    @Test func cpuListsUseTheAllowedCPUs() {
        #expect(ProcessCluster.cpuLists(workers: 2, threads: 1, cpus: [4, 6]) == [[4], [6]])
        #expect(ProcessCluster.cpuLists(workers: 3, threads: 2, cpus: [3, 5, 9]) == [[3, 5], [9, 3], [5, 9]])
        #expect(ProcessCluster.cpuLists(workers: 2, threads: 2, cpus: []) == [[], []])
        let allowed = ComputePool.allowedCPUs()
        #expect(!allowed.isEmpty && allowed == allowed.sorted() && allowed.count <= ProcessInfo.processInfo.activeProcessorCount)
    }

    /// Pinned by default (`--pin-workers`): each worker's main thread runs on the first CPU of its
    /// list, its compute thread on the second, and the results are the oracle's.
    @Test func workersArePinnedByDefaultRunOnTheirCPUsAndMatchTheOracle() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 3, workerExecutable: Self.workerExecutable,
                                         threadsPerWorker: 2)
        defer { cluster.stop() }
        try Self.expectOracleEdit(on: cluster)

        let lists = ProcessCluster.cpuLists(workers: 3, threads: 2, cpus: ComputePool.allowedCPUs())
        for (w, process) in cluster.processes.enumerated() {
            #expect(try Self.allowedCPUs(process) == [lists[w][0]], "worker \(w)'s main thread")
            #expect(try Self.allowedCPUs(process, thread: "compute-1") == [lists[w][1 % lists[w].count]], "worker \(w)'s compute thread")
        }
    }

    /// `--no-pin-workers`: every thread of every worker may run on every CPU this process may.
    @Test func unpinnedWorkersMayRunAnywhere() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable,
                                         threadsPerWorker: 2, pinWorkers: false)
        defer { cluster.stop() }
        try Self.expectOracleEdit(on: cluster)
        for (w, process) in cluster.processes.enumerated() {
            #expect(try Self.allowedCPUs(process) == ComputePool.allowedCPUs(), "worker \(w)'s main thread")
            #expect(try Self.allowedCPUs(process, thread: "compute-1") == ComputePool.allowedCPUs(), "worker \(w)'s compute thread")
        }
    }

    /// The oracle's `cond_step0_zero` case (layer 0's output zeroed at step 0) on `cluster`.
    static func expectOracleEdit(on cluster: ProcessCluster) throws {
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 3) { tracer in
            for _ in tracer.iter[0] { model.transformer.h[0].output[0][.all] = 0 }
            output = model.generator.output.save()
        }
        try Oracle.expectMatch(try output.value, try Oracle.saves("cond_step0_zero")["output"], "output")
    }

    /// A process's (or one of its named threads') `Cpus_allowed_list`, e.g. "0-2,5" as [0, 1, 2, 5].
    static func allowedCPUs(_ process: Process, thread name: String? = nil) throws -> [Int] {
        var path = "/proc/\(process.processIdentifier)"
        if let name {
            let task = "\(path)/task"
            let id = try FileManager.default.contentsOfDirectory(atPath: task).first {
                (try? String(contentsOfFile: "\(task)/\($0)/comm", encoding: .utf8))?.hasPrefix(name) == true
            }
            guard let id else { return [] }
            path = "\(task)/\(id)"
        }
        let status = try String(contentsOfFile: "\(path)/status", encoding: .utf8)
        let list = status.split(separator: "\n").first { $0.hasPrefix("Cpus_allowed_list:") }?
            .split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? ""
        return list.split(separator: ",").flatMap { item -> [Int] in
            let bounds = item.split(separator: "-").compactMap { Int($0) }
            return bounds.count == 2 ? Array(bounds[0]...bounds[1]) : bounds
        }
    }

    /// The stages form a ring: the last stage starts each next step at the first. It stops where
    /// the in-process driver stops (max_new_tokens; eos in every row, with a finished row padded
    /// while the other goes on) and hands on the positions of left-padded rows.
    @Test func theLastStageStartsEachStepAndStopsWhereTheDriverDoes() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1)
        defer { cluster.stop() }
        let remote = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        let local = try LanguageModel.load(Oracle.model, stages: 2)
        func run(_ model: LanguageModel, eos: Int, steps: Int) throws -> (output: [Int], shape: [Int], last: [Int]) {
            var output: Saved!, last: SavedList!
            try model.generate(maxNewTokens: steps, eosTokenId: eos) { tracer in
                tracer.invoke(Oracle.p1) {}
                tracer.invoke("Hi") {}  // shorter: left-padded
                last = tracer.list().save()
                for _ in tracer.all() { last.append(model.transformer.h[-1].output[0][.all, -1, 0]) }
                output = model.generator.output.save()
            }
            let value = try output.value
            return (value.ints, value.shape, last.items.map { Int(($0.floats[0] * 1e4).rounded()) })
        }
        // Greedy p1 continues [1052, 808, ...]: eos 808 finishes row 0 after step 1, not row 1.
        for (eos, steps) in [(808, 6), (1999, 4), (1052, 3)] {
            let (r, l) = (try run(remote, eos: eos, steps: steps), try run(local, eos: eos, steps: steps))
            #expect(r.output == l.output, "eos \(eos), \(steps) steps")
            #expect(r.shape == l.shape)
            #expect(r.last == l.last)
        }
    }
}
