import Coordinator
import Engine
import Foundation
import Telemetry
import Wire

/// `nnsight bench --workers N --traces K`: the tracing API on a GPT-2-small-shaped model split
/// across N stages (worker processes, or threads with --in-process), K traces in flight.
struct ClusterBench {
    let workers: Int
    let traces: Int
    let inProcess: Bool
    let local: LocalWorkerOptions
    var shape: ModelShape = .small
    /// Also measure with batching off (`--max-batch 1`), interleaved with the batched runs.
    var compareUnbatched = false
    /// Also measure with CURVE on every connection (keys made for the run), interleaved.
    var compareCurve = false
    /// Also run this many short traces, `traces` at a time, and report worker RSS after 100 and after all.
    var soak: Int?
    let json: Bool
    let newTokens = 32

    /// A random GPT-2 checkpoint of `shape` on disk for the workers (written once: about 500 MB
    /// for small, 1.4 GB for medium, 3.1 GB for large, 6.2 GB for xl).
    static func checkpoint(_ shape: ModelShape = .small) throws -> String {
        let dir = NSTemporaryDirectory() + "nnsight-bench-gpt2-\(shape.rawValue)"
        if FileManager.default.fileExists(atPath: dir + "/merges.txt") { return dir }
        let config = shape.config
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

    /// What one cluster measured.
    struct Measurement {
        var perToken: [Double] = []
        var oneTrace: [Double] = []   // tokens/s of one trace alone
        var manyTraces: [Double] = [] // tokens/s of `traces` in flight
        var workerPeakRSS: [Double] = []
        var workerRSS: [Double] = []
        /// Start of the worker processes to every stage served (weights loaded).
        var load: [Double] = []
    }

    func run() throws {
        let dir = try Self.checkpoint(shape)
        var batched = Measurement(), unbatched = Measurement(), curved = Measurement()
        // Rounds alternate the configurations (the machine is noisy): 3 with a comparison, 1 without.
        for _ in 0..<(compareUnbatched || compareCurve ? 3 : 1) {
            try measure(dir, into: &batched, extra: [])
            if compareUnbatched { try measure(dir, into: &unbatched, extra: ["--max-batch", "1"]) }
            if compareCurve { try measure(dir, into: &curved, extra: [], curve: true) }
        }
        let inFlight = inProcess ? 1 : traces
        var figures: [(String, Any)] = [
            ("model", "gpt2-\(shape.rawValue)-shape (random weights)"), ("dtype", local.dtype.rawValue),
            ("stages", workers), ("mode", inProcess ? "in-process" : "processes"), ("traces", inFlight),
            ("decode_ms_per_token", round3(median(batched.perToken) * 1000)),
            ("tokens_per_s", round3(median(batched.manyTraces))),
            ("tokens_per_s_1_trace", round3(median(batched.oneTrace))),
            ("speedup_over_1_trace", round3(median(batched.manyTraces) / median(batched.oneTrace))),
            ("new_tokens_per_trace", newTokens),
            ("worker_threads", local.workerThreads ?? max(1, ComputePool.usableCores / workers)),
            ("workers_pinned", local.pinWorkers),
        ]
        if !batched.load.isEmpty { figures.append(("load_s", round3(median(batched.load)))) }
        if !batched.workerPeakRSS.isEmpty {
            // Peak includes loading (the checkpoint's pages are mapped while a stage copies its tensors).
            figures.append(("worker_peak_rss_mb", batched.workerPeakRSS.map(round3)))
            figures.append(("worker_rss_mb", batched.workerRSS.map(round3)))
        }
        if compareUnbatched {
            figures += [
                ("tokens_per_s_no_batching", round3(median(unbatched.manyTraces))),
                ("tokens_per_s_1_trace_no_batching", round3(median(unbatched.oneTrace))),
                ("decode_ms_per_token_no_batching", round3(median(unbatched.perToken) * 1000)),
            ]
        }
        if compareCurve {
            figures += [
                ("decode_ms_per_token_curve", round3(median(curved.perToken) * 1000)),
                ("curve_overhead_per_token_percent", round3((median(curved.perToken) / median(batched.perToken) - 1) * 100)),
                ("tokens_per_s_1_trace_curve", round3(median(curved.oneTrace))),
                ("tokens_per_s_curve", round3(median(curved.manyTraces))),
            ]
        }
        if let soak, !inProcess { figures += try soakFigures(dir, total: soak) }
        try printFigures(figures, json: json)
    }

    /// `total` traces of 4 new tokens each, `traces` clients at once: each worker's resident
    /// memory after the first 100 and after all of them (growth per trace would show here), and
    /// the traces finished per second after the first 100.
    private func soakFigures(_ dir: String, total: Int) throws -> [(String, Any)] {
        let cluster = try local.startCluster(model: dir, workers: workers)
        defer { cluster.stop() }
        let clients = try (0..<traces).map { _ in try LanguageModel.connect(cluster.endpoint, model: dir) }
        final class Counter: @unchecked Sendable {
            let lock = NSLock()
            var started = 0, failure: Error?
        }
        func runUntil(_ count: Int) throws {
            let counter = Counter(), group = DispatchGroup()
            for client in clients {
                nonisolated(unsafe) let client = client
                group.enter()
                Thread {
                    while counter.lock.withLock({ () -> Bool in
                        guard counter.started < count, counter.failure == nil else { return false }
                        counter.started += 1
                        return true
                    }) {
                        do { try Self.generate(client, 4) } catch { counter.lock.withLock { counter.failure = error } }
                    }
                    group.leave()
                }.start()
            }
            group.wait()
            if let failure = counter.failure { throw failure }
        }
        let first = min(100, total)
        try runUntil(first)
        let after100 = cluster.processes.map { Self.residentMegabytes(pid: $0.processIdentifier) }
        let start = DispatchTime.now().uptimeNanoseconds
        try runUntil(total - first)
        let rate = Double(total - first) / (Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        let afterAll = cluster.processes.map { Self.residentMegabytes(pid: $0.processIdentifier) }
        let growth = zip(after100, afterAll).map { round3(($1 - $0) / $0 * 100) }
        return [("soak_traces", total), ("soak_traces_per_second", round3(rate)), ("worker_rss_mb_after_100", after100.map(round3)),
                ("worker_rss_mb_after_all", afterAll.map(round3)), ("worker_rss_growth_percent", growth)]
    }

    /// A process's resident memory now (VmRSS), in MB; 0 when it cannot be read.
    static func residentMegabytes(pid: Int32) -> Double { Double(ProcessMemory.resident(pid: pid) ?? 0) / 1_048_576 }

    /// One cluster: batch-1 decode time, one trace's tokens/s, then `traces` in flight.
    private func measure(_ dir: String, into m: inout Measurement, extra: [String], curve: Bool = false) throws {
        var cluster: ProcessCluster?
        defer { cluster?.stop() }
        let connect: () throws -> LanguageModel
        if inProcess {
            let model = try LanguageModel.load(dir, stages: workers, weightType: local.dtype)
            connect = { model }
        } else {
            let start = DispatchTime.now().uptimeNanoseconds
            cluster = try local.startCluster(model: dir, workers: workers, extraArguments: extra, curve: curve)
            m.load.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            let endpoint = cluster!.endpoint, keys = cluster!.clientKeys
            connect = { try LanguageModel.connect(endpoint, model: dir, keys: keys) }
        }
        // Batch 1, one trace: per-token decode time from the difference of two lengths.
        let model = try connect()
        try Self.generate(model, 2)
        m.perToken += try (0..<3).map { _ in try Self.secondsPerToken(model, newTokens: newTokens) }
        for _ in 0..<5 { m.oneTrace.append(Double(newTokens) / (try timed { try Self.generate(model, newTokens) })) }
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
        m.manyTraces.append(Double((inProcess ? 1 : traces) * newTokens) / Date().timeIntervalSince(start))
        if let cluster {
            m.workerPeakRSS = cluster.processes.map { Self.peakRSSMegabytes(pid: $0.processIdentifier) }
            m.workerRSS = cluster.processes.map { Self.residentMegabytes(pid: $0.processIdentifier) }
        }
    }

    /// A process's peak resident memory (VmHWM), in MB; 0 when it cannot be read.
    static func peakRSSMegabytes(pid: Int32) -> Double { Double(ProcessMemory.peak(pid: pid) ?? 0) / 1_048_576 }
}
