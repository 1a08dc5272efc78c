import Engine
import Foundation
import Wire
import Worker

/// Pipeline stages as threads of this process, each a `StageWorker` on `inproc://` sockets: the
/// same code path as workers in other processes, with ZeroMQ's in-process transport.
/// How layers are split across stages by default: evenly, the first stages taking the remainder.
public enum LocalClusterSplit {
    public static func ranges(layers: Int, stages: Int) -> [Range<Int>] { LocalCluster.split(layers: layers, stages: stages) }
}

final class LocalCluster {
    let context = ZMQContext()
    let config: GPT2Config
    let stages: [Range<Int>]
    let stageEndpoints: [String]
    let coordinatorEndpoint: String
    private let done = DispatchSemaphore(value: 0)

    /// Splits the layers evenly (the first stages take the remainder).
    static func split(layers: Int, stages: Int) -> [Range<Int>] {
        let n = max(1, min(stages, layers))
        var ranges: [Range<Int>] = []
        var start = 0
        for s in 0..<n {
            let size = layers / n + (s < layers % n ? 1 : 0)
            ranges.append(start..<(start + size))
            start += size
        }
        return ranges
    }

    convenience init(directory: String, stages count: Int) throws {
        let config = try GPT2Config.load(directory: directory)
        let models = try Self.split(layers: config.nLayer, stages: count).map {
            GPT2(weights: try GPT2Weights.load(directory: directory, config: config, layers: $0))
        }
        self.init(models: models)
    }

    /// Stages already in memory (e.g. random weights for benchmarks), in layer order.
    init(models: [GPT2]) {
        config = models[0].config
        stages = models.map(\.layers)
        let tag = UUID().uuidString
        stageEndpoints = stages.indices.map { "inproc://nnsight-\(tag)-stage-\($0)" }
        coordinatorEndpoint = "inproc://nnsight-\(tag)-coordinator"
        for (s, model) in models.enumerated() {
            let endpoints = StageEndpoints(input: stageEndpoints[s], next: s + 1 < stages.count ? stageEndpoints[s + 1] : nil,
                                           coordinator: coordinatorEndpoint)
            let (context, done) = (context, done)
            let thread = Thread {
                let worker = StageWorker(model: model, context: context, endpoints: endpoints)
                do { try worker.serve() } catch { FileHandle.standardError.write(Data("stage \(s): \(error)\n".utf8)) }
                done.signal()
            }
            thread.name = "nnsight-stage-\(s)"
            thread.start()
        }
    }

    /// Stops every stage thread and waits for them.
    func shutdown(using sockets: [ZMQSocket]) {
        for socket in sockets {
            _ = try? socket.send(try Framing.encode(Framing.envelope { $0.cancel = .with { $0.reason = "shutdown" } }))
        }
        for _ in stages { _ = done.wait(timeout: .now() + 10) }
    }
}
