import Coordinator
import Engine
import Foundation

/// `nnsight bench --workers N --traces K`: the tracing API on a GPT-2-small-shaped model split
/// across N stages (worker processes, or threads with --in-process), K traces in flight.
struct ClusterBench {
    let workers: Int
    let traces: Int
    let inProcess: Bool
    let local: LocalWorkerOptions
    let json: Bool
    let newTokens = 32

    /// A random GPT-2 small checkpoint on disk for the workers (written once, about 500 MB).
    static func checkpoint() throws -> String {
        let dir = NSTemporaryDirectory() + "nnsight-bench-gpt2-small"
        if FileManager.default.fileExists(atPath: dir + "/merges.txt") { return dir }
        let config = GPT2Config.gpt2Small
        try GPT2Weights.random(config: config, seed: 1).save(to: dir)
        var vocab: [String: Int] = ["<|endoftext|>": 50256]
        for byte in 0..<256 { vocab[GPT2Tokenizer.byteSymbol(byte)] = byte }
        try JSONSerialization.data(withJSONObject: vocab).write(to: URL(fileURLWithPath: dir + "/vocab.json"))
        try "#version: 0.2\n".write(toFile: dir + "/merges.txt", atomically: true, encoding: .utf8)
        return dir
    }

    /// The benchmark's trace: a fixed 10-token prompt, `n` new tokens, no eos stop.
    @Sendable static func generate(_ model: LanguageModel, _ n: Int) throws {
        let prompt = (0..<10).map { ($0 * 7919) % 50257 }
        try model.generate(maxNewTokens: n, eosTokenId: -1) { tracer in tracer.invoke(tokens: prompt) {} }
    }

    /// Seconds per decoded token: the difference of a 1-token and a (newTokens + 1)-token trace,
    /// so that prefill and set-up cancel.
    static func secondsPerToken(_ model: LanguageModel, newTokens: Int) throws -> Double {
        let short = try timed { try generate(model, 1) }
        let long = try timed { try generate(model, newTokens + 1) }
        return (long - short) / Double(newTokens)
    }

    func run() throws {
        let dir = try Self.checkpoint()
        var cluster: ProcessCluster?
        defer { cluster?.stop() }
        let connect: () throws -> LanguageModel
        if inProcess {
            let model = try LanguageModel.load(dir, stages: workers)
            connect = { model }
        } else {
            cluster = try local.startCluster(model: dir, workers: workers)
            let endpoint = cluster!.endpoint
            connect = { try LanguageModel.connect(endpoint, model: dir) }
        }
        // Batch 1, one trace: per-token decode time from the difference of two lengths.
        let model = try connect()
        try Self.generate(model, 2)
        let perToken = try (0..<3).map { _ in try Self.secondsPerToken(model, newTokens: newTokens) }
        // K traces in flight, one client (thread and connection) each.
        let models = inProcess ? [model] : try (0..<traces).map { _ in try connect() }
        final class Errors: @unchecked Sendable { let lock = NSLock(); var first: Error? }
        let errors = Errors()
        let group = DispatchGroup()
        let start = Date()
        for k in 0..<(inProcess ? 1 : traces) {
            nonisolated(unsafe) let client = models[k]
            group.enter()
            Thread {
                do { try Self.generate(client, newTokens) } catch { errors.lock.lock(); errors.first = error; errors.lock.unlock() }
                group.leave()
            }.start()
        }
        group.wait()
        if let error = errors.first { throw error }
        let wall = Date().timeIntervalSince(start)
        let inFlight = inProcess ? 1 : traces
        let figures: [(String, Any)] = [
            ("model", "gpt2-small-shape (random weights)"),
            ("stages", workers), ("mode", inProcess ? "in-process" : "processes"), ("traces", inFlight),
            ("decode_ms_per_token", round3(median(perToken) * 1000)),
            ("tokens_per_s", round3(Double(inFlight * newTokens) / wall)),
            ("new_tokens_per_trace", newTokens),
            ("worker_threads", local.workerThreads ?? max(1, ComputePool.usableCores / workers)),
            ("workers_pinned", local.pinWorkers),
        ]
        try printFigures(figures, json: json)
    }
}
