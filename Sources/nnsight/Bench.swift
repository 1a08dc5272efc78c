import ArgumentParser
import Engine
import Foundation
import Telemetry

struct Bench: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        abstract: "Measure the Engine on a random-weight model of GPT-2 small's shape.",
        discussion: """
        Builds GPT-2 small (12 layers, 768 hidden, 12 heads, 50257 vocab, 1024 positions) with random
        weights in memory and times prefill (10 and 128 tokens, last-position logits), batch-1 decode
        (median over 64 steps) and batch-8 decode. Run a release build:
          swift build -c release && .build/release/nnsight bench --json
        """)

    @OptionGroup var logging: LoggingOptions

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @OptionGroup var threads: ThreadOptions

    @Option(name: .long, help: "Decode steps timed per measurement.")
    var steps: Int = 64

    @Option(name: .long, help: "Repetitions of each prefill measurement.")
    var repeats: Int = 7

    @Option(name: .long, help: "Measure the cluster: this many pipeline stages (worker processes).")
    var workers: Int?

    @Option(name: .long, help: "With --workers: traces in flight at once (one client each).")
    var traces: Int = 1

    @Flag(name: .long, help: "With --workers: run the stages as threads of this process.")
    var inProcess = false

    @OptionGroup var local: LocalWorkerOptions

    @Option(name: .long, help: "The model's shape: small (124M), medium (355M), large (774M) or xl (1.5B), random weights.")
    var shape: ModelShape = .small

    @Flag(name: .long, help: "With --workers: also measure the same traces with batching off (--max-batch 1), interleaved.")
    var noBatching = false

    @Flag(name: .long, help: "With --workers: also measure with CURVE on every connection (keys made for the run), interleaved.")
    var curve = false

    @Option(name: .long, help: "With --workers: then run this many short traces, --traces at a time, and report worker RSS after 100 and after all.")
    var soak: Int?

    @Flag(name: .long, help: "Measure the pipeline hops: 1 stage in-process, 1, 2 and 3 worker processes, interleaved (each computing on all cores unless --worker-threads).")
    var hopCost = false

    @Option(name: .long, help: "With --hop-cost: rounds over the four configurations.")
    var rounds: Int = 10

    func run() throws {
        threads.apply()
        if hopCost { return try HopBench(rounds: rounds, local: local, json: json).run() }
        if let workers {
            return try ClusterBench(workers: workers, traces: traces, inProcess: inProcess, local: local, shape: shape,
                                    compareUnbatched: noBatching, compareCurve: curve, soak: soak, json: json).run()
        }
        let config = shape.config
        let model = GPT2(weights: try GPT2Weights.random(config: config, seed: 1, type: local.dtype))
        let pipeline = try Pipeline(stages: [model])
        var rng = SplitMix64(seed: 42)
        func prompt(_ n: Int) -> [Int] { (0..<n).map { _ in Int(rng.next() % UInt64(config.vocabSize)) } }

        func prefill(_ length: Int) throws -> Double {
            let step = StepInput(tokens: prompt(length))
            let states = pipeline.makeStates(batch: 1, capacity: length)
            var times: [Double] = []
            for _ in 0..<repeats {
                states[0].cache.reset()
                times.append(try timed { _ = try pipeline.forward(step, states: states) })
            }
            return median(times)
        }

        /// Median seconds per decode step for `batch` sequences after a 10-token prompt.
        func decode(batch: Int, on pipeline: Pipeline = pipeline) throws -> Double {
            let prompts = (0..<batch).map { _ in prompt(10) }
            let padded = PaddedBatch(prompts: prompts, padTokenId: 0)
            let states = pipeline.makeStates(batch: batch, capacity: 10 + steps + 1)
            var logits = try pipeline.forward(padded.firstStep, states: states)
            var sampler = Sampler(SamplingParameters())
            var finished = [Bool](repeating: false, count: batch)
            var times: [Double] = []
            for s in 0..<steps {
                let next = sampler.nextTokens(logits, finished: &finished, eos: nil, pad: 0).map { Int32($0) }
                let step = StepInput(batch: batch, length: 1, tokens: next,
                                     positions: [Int32](repeating: Int32(10 + s), count: batch),
                                     mask: [UInt8](repeating: 1, count: batch))
                times.append(try timed { logits = try pipeline.forward(step, states: states) })
            }
            return median(times)
        }

        /// Median seconds per decode step of 8 separate requests (each its own KV cache and
        /// prompt length), stacked into one pass or run one after another.
        func decodeRequests(stacked: Bool) throws -> Double {
            let lengths = [10, 7, 12, 9, 10, 5, 11, 8]
            let states = lengths.map { InferenceState(config: config, layers: config.nLayer, batch: 1, capacity: $0 + steps + 1) }
            var inputs = lengths.map { StepInput(tokens: prompt($0)) }
            let shared = BatchWorkspace()
            func pass() throws {
                let entries = zip(inputs, states).map { BatchEntry($0, state: $1) }
                let outputs = stacked ? try model.forward(batch: entries, workspace: shared)
                    : try entries.map { try model.forward($0.step, state: $0.state) }
                for (i, out) in outputs.enumerated() {
                    let next = out.withValues { Sampler.argmax(UnsafeBufferPointer(rebasing: $0[($0.count - config.vocabSize)...])) }
                    inputs[i] = .decode(tokens: [next], after: inputs[i].lastPositions)
                }
            }
            try pass()
            var times: [Double] = []
            for _ in 0..<steps { times.append(try timed { try pass() }) }
            return median(times)
        }

        // 16-bit weights: the f32 model's decode in the same run, for the ratio.
        var reference: [(String, Any)] = []
        var halfDecode: Double?
        if local.dtype != .f32 {
            let f32 = try Pipeline(stages: [GPT2(weights: try GPT2Weights.random(config: config, seed: 1))])
            var f32Times: [Double] = [], times: [Double] = []
            for _ in 0..<3 {
                f32Times.append(try decode(batch: 1, on: f32))
                times.append(try decode(batch: 1))
            }
            halfDecode = median(times)
            reference = [("decode_ms_per_token_f32", round3(median(f32Times) * 1000)),
                         ("decode_ratio_to_f32", round3(median(times) / median(f32Times)))]
        }
        let prefill10 = try prefill(10)
        let prefill128 = try prefill(128)
        let decode1 = try halfDecode ?? decode(batch: 1)
        let decode8 = try decode(batch: 8)
        let stacked8 = try decodeRequests(stacked: true)
        let separate8 = try decodeRequests(stacked: false)
        let figures: [(String, Any)] = [
            ("model", "gpt2-\(shape.rawValue)-shape (random weights)"),
            ("dtype", local.dtype.rawValue),
            ("weight_mb", round3(Double(model.weights.parameterBytes) / 1_048_576)),
            ("prefill_ms_10", round3(prefill10 * 1000)),
            ("prefill_ms_128", round3(prefill128 * 1000)),
            ("decode_ms_per_token", round3(decode1 * 1000)),
            ("decode_tokens_per_s_batch8", round3(8 / decode8)),
            ("decode_tokens_per_s_8_requests_stacked", round3(8 / stacked8)),
            ("decode_tokens_per_s_8_requests_one_by_one", round3(8 / separate8)),
            ("peak_rss_mb", round3(Double(ProcessMemory.peak() ?? 0) / 1_048_576)),
            ("threads", BLASRuntime.threads),
            ("blas_core", BLASRuntime.coreName),
        ] + reference
        try printFigures(figures, json: json)
    }
}

/// The GPT-2 sizes the benchmarks build (random weights).
enum ModelShape: String, ExpressibleByArgument, CaseIterable {
    case small, medium, large, xl

    var config: GPT2Config {
        switch self {
        case .small: .gpt2Small
        case .medium: .gpt2Medium
        case .large: .gpt2Large
        case .xl: .gpt2XL
        }
    }
}

func timed(_ body: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try body()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
