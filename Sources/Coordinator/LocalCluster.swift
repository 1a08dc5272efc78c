import Engine
import Foundation
import Logging
import Wire
import Worker

/// How layers are split across stages by default: by the bytes a decode step reads (see
/// `LocalCluster.split(config:stages:)`).
public enum LocalClusterSplit {
    public static func ranges(config: GPT2Config, stages: Int) -> [Range<Int>] { LocalCluster.split(config: config, stages: stages) }
}

/// A cluster inside this process: the `ClusterCoordinator` and one `WorkerProcess` per stage, each
/// on its own thread, over ZeroMQ's `inproc://` transport. The same code as a cluster of worker
/// processes (registration, assignment, the ring, heartbeats), with the weights already in memory.
final class LocalCluster {
    let context = ZMQContext()
    let config: GPT2Config
    let stages: [Range<Int>]
    /// The coordinator's control endpoint (clients submit traces here).
    let endpoint: String
    private let stop = StopFlag()
    private let done = DispatchSemaphore(value: 0)
    private let threads: Int

    /// Splits the layers so that the stage reading the most weights per decode step reads as
    /// little as possible: a layer costs its parameters, the last stage also the lm_head (V x C,
    /// for GPT-2 small as much as 5.5 layers). Every stage gets at least one layer; among equal
    /// maxima, earlier stages take more. With several traces in flight every stage is busy, so
    /// the slowest one sets the pace.
    ///
    /// ```swift
    /// LocalCluster.split(config: .gpt2Small, stages: 2)  // [0..<9, 9..<12]
    /// ```
    static func split(config c: GPT2Config, stages: Int) -> [Range<Int>] {
        let L = c.nLayer, n = max(1, min(stages, c.nLayer))
        let layer = 12 * c.nEmbd * c.nEmbd + 13 * c.nEmbd, head = c.vocabSize * c.nEmbd
        // best[s][i]: the least maximum cost of cutting layers i..<L into stages s..<n; cut[s][i] the first stage's end.
        var best = [[Int]](repeating: [Int](repeating: .max, count: L + 1), count: n + 1)
        var cut = [[Int]](repeating: [Int](repeating: L, count: L + 1), count: n + 1)
        for i in 0..<L { best[n - 1][i] = (L - i) * layer + head }
        for s in stride(from: n - 2, through: 0, by: -1) {
            for i in 0..<L where L - i >= n - s {
                for end in (i + 1)...(L - (n - s - 1)) {
                    let cost = max((end - i) * layer, best[s + 1][end])
                    if cost < best[s][i] || cost == best[s][i] && end > cut[s][i] { (best[s][i], cut[s][i]) = (cost, end) }
                }
            }
        }
        var ranges: [Range<Int>] = [], start = 0
        for s in 0..<n {
            let end = s == n - 1 ? L : cut[s][start]
            ranges.append(start..<end)
            start = end
        }
        return ranges
    }

    convenience init(directory: String, stages count: Int, weightType: WeightType = .f32) throws {
        let config = try GPT2Config.load(directory: directory)
        let models = try Self.split(config: config, stages: count).map {
            GPT2(weights: try GPT2Weights.load(directory: directory, config: config, layers: $0, type: weightType))
        }
        try self.init(models: models)
    }

    /// Stages already in memory (e.g. random weights for benchmarks), in layer order.
    init(models: [GPT2]) throws {
        config = models[0].config
        stages = models.map(\.layers)
        let tag = UUID().uuidString
        endpoint = "inproc://nnsight-\(tag)-control"
        var options = ClusterCoordinator.Options(model: config.architectureId, workers: models.count)
        options.listen = endpoint
        options.results = "inproc://nnsight-\(tag)-results"
        options.split = stages.dropLast().map(\.upperBound)
        options.config = config
        // Threads of one process do not die alone: a long pass must not look like a lost stage.
        options.workerTimeoutMs = 600_000
        let ready = DispatchSemaphore(value: 0)
        options.onReady = { ready.signal() }
        threads = models.count + 1
        let (context, stop, done, config, coordinatorOptions) = (context, stop, done, config, options)
        let started = Started()
        let coordinatorThread = Thread {
            do {
                let coordinator = try ClusterCoordinator(coordinatorOptions, context: context, log: Logger(label: "nnsight.local"))
                started.set(nil)
                try coordinator.serve(shouldStop: { stop.isSet })
            } catch {
                started.set(error)
                FileHandle.standardError.write(Data("local coordinator: \(error)\n".utf8))
            }
            done.signal()
        }
        coordinatorThread.name = "nnsight-coordinator"
        coordinatorThread.start()
        if let error = started.wait() { throw error }
        let byRange = Dictionary(uniqueKeysWithValues: models.map { ($0.layers, UncheckedModel(model: $0)) })
        for s in models.indices {
            var worker = WorkerProcess.Options(connect: endpoint, bind: "inproc://nnsight-\(tag)-stage-\(s)", model: config.architectureId,
                                               workerId: "stage-\(s)")
            worker.coordinatorTimeoutMs = 600_000
            let workerOptions = worker
            let thread = Thread {
                let process = WorkerProcess(workerOptions, config: config, context: context, log: Logger(label: "nnsight.stage")) { layers in
                    guard let model = byRange[layers]?.model else { throw WorkerError.refused("no stage in memory for layers \(layers)") }
                    return model
                }
                do { try process.run(shouldStop: { stop.isSet }) } catch {
                    FileHandle.standardError.write(Data("stage \(s): \(error)\n".utf8))
                }
                done.signal()
            }
            thread.name = "nnsight-stage-\(s)"
            thread.start()
        }
        guard ready.wait(timeout: .now() + 60) == .success else {
            shutdown()
            throw TraceError(.transport, "the in-process stages did not become ready within 60 s")
        }
    }

    /// Stops the coordinator (which tells the stages to stop) and waits for every thread.
    func shutdown() {
        guard !stop.isSet else { return }
        stop.set()
        for _ in 0..<threads { _ = done.wait(timeout: .now() + 10) }
    }

    deinit { shutdown() }
}

/// A flag one thread sets and others read.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}

/// The outcome of starting the coordinator thread, handed to the thread that waits for it.
private final class Started: @unchecked Sendable {
    private let semaphore = DispatchSemaphore(value: 0)
    private var error: Error?
    func set(_ error: Error?) {
        self.error = error
        semaphore.signal()
    }
    func wait() -> Error? {
        semaphore.wait()
        return error
    }
}

/// A stage's model handed to its thread (the weights are read-only once loaded).
private struct UncheckedModel: @unchecked Sendable { let model: GPT2 }
