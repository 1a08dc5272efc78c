import Coordinator
import Engine
import Foundation

/// `nnsight bench --hop-cost`: what the pipeline hops cost per token. One trace, batch 1, on
/// GPT-2 small's shape: 1 stage in-process (the baseline), then 1, 2 and 3 stages as worker
/// processes, all set up at once and measured in turn, round after round, so that the machine's
/// drift (this VM's speed varies 10-15 % from minute to minute) touches every configuration
/// alike. The 1-process row separates what being a process (and pinned) changes from what the
/// hops between stages add.
struct HopBench {
    let rounds: Int
    let local: LocalWorkerOptions
    let json: Bool
    let newTokens = 32

    /// Every stage computes on the cores by default: one trace keeps one stage busy at a time.
    var workerThreads: Int { local.workerThreads ?? ComputePool.usableCores }

    func run() throws {
        let dir = try ClusterBench.checkpoint()
        var clusters: [ProcessCluster] = []
        defer { clusters.forEach { $0.stop() } }
        var setups: [(name: String, model: LanguageModel)] = [("1 stage, in-process", try LanguageModel.load(dir, stages: 1))]
        for workers in [1, 2, 3] {
            let cluster = try local.startCluster(model: dir, workers: workers, threads: workerThreads)
            clusters.append(cluster)
            setups.append((workers == 1 ? "1 worker process" : "\(workers) worker processes", try LanguageModel.connect(cluster.endpoint, model: dir)))
        }
        for setup in setups { try ClusterBench.generate(setup.model, 4) }
        var perToken = [[Double]](repeating: [], count: setups.count)  // ms, per setup, per round
        for _ in 0..<rounds {
            for (i, setup) in setups.enumerated() {
                perToken[i].append(try ClusterBench.secondsPerToken(setup.model, newTokens: newTokens) * 1000)
            }
        }
        let medians = perToken.map(median)
        // Each round's ratio to the 1-stage figure of the same round (adjacent in time), then the
        // median: cancels drift slower than a round.
        func paired(_ i: Int, over base: Int) -> Double { median(zip(perToken[i], perToken[base]).map { $0 / $1 - 1 }) * 100 }
        let oneProcess = 1
        let rows: [[String: Any]] = setups.indices.map { i in
            ["config": setups[i].name, "decode_ms_per_token": round3(medians[i]),
             "overhead_percent": round3((medians[i] / medians[0] - 1) * 100),
             "paired_overhead_percent": round3(paired(i, over: 0)),
             "paired_overhead_over_1_process_percent": round3(paired(i, over: oneProcess)),
             "runs_ms": perToken[i].map(round3)]
        }
        if json {
            let object: [String: Any] = ["model": "gpt2-small-shape (random weights)", "rounds": rounds,
                                         "worker_threads": workerThreads, "workers_pinned": local.pinWorkers, "new_tokens_per_trace": newTokens, "configs": rows]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            for row in rows {
                print("\(row["config"]!): \(row["decode_ms_per_token"]!) ms/token (\(row["overhead_percent"]!) % over 1 stage in-process, "
                      + "paired \(row["paired_overhead_percent"]!) %; paired over 1 process \(row["paired_overhead_over_1_process_percent"]!) %)")
            }
        }
    }
}
