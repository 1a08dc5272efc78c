import ArgumentParser
import Coordinator
import Engine
import Foundation
import Logging
import Telemetry
import Wire

@main
struct NNSight: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nnsight",
        abstract: "Run GPT-2 and look inside it while it generates.",
        subcommands: [Generate.self, Run.self, Serve.self, Status.self, Keygen.self, Bench.self, BenchWire.self, BenchTrace.self, BenchMemory.self, Info.self],
        defaultSubcommand: Generate.self)

    static func main() {
        BLASRuntime.ensureFastKernels()
        ProcessTuning.keepLargeAllocationsInHeap()
        do {
            var command = try parseAsRoot()
            // Logs go to stderr (stdout is the script's): `serve` at info, the rest at warning, or --log-level.
            let logged = command as? HasLogLevel
            LogSetup.bootstrap(level: logged.map { $0.logging.logLevel ?? $0.defaultLogLevel } ?? .warning)
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// `--threads`, for every command that computes in this process.
struct ThreadOptions: ParsableArguments {
    @Option(name: .long, help: "Compute threads (default: the cores this process may use).")
    var threads: Int?

    func apply() {
        BLASRuntime.threads = threads ?? ComputePool.usableCores
    }
}

/// `--log-level`, for every command that runs a coordinator, workers or a client.
struct LoggingOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Log level on stderr: trace, debug, info, notice, warning, error or critical (default: info for serve, warning otherwise).",
                                            valueName: "level"))
    var logLevel: Logger.Level?
}

/// A command with `--log-level`.
protocol HasLogLevel {
    var logging: LoggingOptions { get }
    var defaultLogLevel: Logger.Level { get }
}

extension HasLogLevel {
    var defaultLogLevel: Logger.Level { .warning }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Flags shared by every command that loads a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("model"), help: "A Hugging Face GPT-2 directory (config.json, model.safetensors, vocab.json, merges.txt), or a hub name (openai-community/gpt2) in the local Hugging Face cache.")
    var modelName: String?

    static let builtIn = "Models/tiny-license-gpt2"

    /// The checkpoint directory: --model (a directory or a cached hub name), else the built-in model.
    func directory() throws -> String { try ModelLocator.resolve(modelName ?? Self.builtIn) }

    /// `--model` resolved, or as given when it does not resolve (the loader then says why).
    var model: String { (try? directory()) ?? modelName ?? Self.builtIn }

    @OptionGroup var threads: ThreadOptions
}

/// Flags for the worker processes a command starts on this machine (`--workers N`).
struct LocalWorkerOptions: ParsableArguments {
    @Option(name: .long, help: "With --workers: compute threads per worker process (default: cores / workers).")
    var workerThreads: Int?

    @Flag(name: .long, inversion: .prefixedNo,
          help: "With --workers: pin each worker process to CPUs of its own (nnsight-worker --cpus).")
    var pinWorkers = true

    @Option(name: .long, help: "How the model's weights are stored: f32 (exact to the oracle), bf16 or f16 (half the bytes, products in f32).")
    var dtype: WeightType = .f32

    @Option(name: .long, help: "With --workers: traces whose steps share one stacked pass on a stage, at most (1: no batching).")
    var maxBatch: Int?

    @Option(name: .long, help: "With --workers: milliseconds a stage with steps ready waits for more to share the pass.")
    var batchWindowMs: Double?

    @Option(name: .long, help: "With --workers: KV-cache memory per worker in MB; traces that do not fit wait (default: no limit).")
    var kvMemory: Int?

    @Option(name: .long, help: "With --workers: spare worker processes (nnsight-worker --standby); one takes over a lost worker's layers and its traces are replayed.")
    var standby = 0

    /// The serving options as nnsight-worker arguments.
    var workerArguments: [String] {
        var arguments = ["--dtype", dtype.rawValue]
        if let maxBatch { arguments += ["--max-batch", String(maxBatch)] }
        if let batchWindowMs { arguments += ["--batch-window-ms", String(batchWindowMs)] }
        if let kvMemory { arguments += ["--kv-memory", String(kvMemory)] }
        return arguments
    }

    /// Starts a coordinator and `workers` `nnsight-worker` processes (beside this executable),
    /// each with `threads` compute threads (default: `--worker-threads`, else cores / workers).
    func startCluster(model: String, workers: Int, threads: Int? = nil, extraArguments: [String] = [], curve: Bool = false) throws -> ProcessCluster {
        let executable = workerExecutable()
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            throw CLIError(description: "\(executable.path) not found: build it (swift build -c release --product nnsight-worker) or pass --in-process")
        }
        return try ProcessCluster(model: model, workers: workers, workerExecutable: executable,
                                  threadsPerWorker: threads ?? workerThreads, pinWorkers: pinWorkers,
                                  workerArguments: workerArguments + extraArguments, readyTimeoutSeconds: 900, curve: curve, standby: standby)
    }
}

/// Prints `figures` as one JSON object (sorted keys) or as `key: value` lines.
func printFigures(_ figures: [(String, Any)], json: Bool) throws {
    if json {
        let data = try JSONSerialization.data(withJSONObject: Dictionary(uniqueKeysWithValues: figures.map { ($0.0, $0.1) }),
                                              options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    } else {
        for (key, value) in figures { print("\(key): \(value)") }
    }
}

/// `nnsight-worker` beside this executable (both are built into the same directory).
func workerExecutable() -> URL {
    URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("nnsight-worker")
}

struct CLIError: Error, CustomStringConvertible {
    let description: String
}

/// `--split 4,8`: layer boundaries between pipeline stages.
func parseLayerBoundaries(_ text: String) throws -> [Int] {
    try text.split(separator: ",").map { part in
        guard let value = Int(part.trimmingCharacters(in: .whitespaces)) else {
            throw CLIError(description: "--split: '\(part)' is not a layer number")
        }
        return value
    }
}

extension WeightType: ExpressibleByArgument {}
