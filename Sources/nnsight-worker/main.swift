import ArgumentParser
import Engine
import Foundation
import Logging
import Telemetry
import Wire
import Worker

/// A pipeline stage's process: registers with a coordinator, loads the layers it is assigned,
/// and serves them.
@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nnsight-worker",
        abstract: "Serve one pipeline stage of a GPT-2 for an nnsight coordinator.",
        discussion: """
        The worker connects to the coordinator (--connect), announces the endpoint where it takes
        activations (--bind), is assigned a layer range, loads only those weights, and serves until
        the coordinator tells it to stop. When the coordinator has been silent for
        --coordinator-timeout seconds, or answers that it dropped this worker (it was frozen, or
        the coordinator restarted), the worker registers again (keeping its weights when it gets
        the same range); it exits when no coordinator assigns it a stage within --register-timeout.
        It runs only the declarative operations of the intervention graph, never user code.
        With --keys DIR the worker speaks CURVE, and its activation port accepts only the coordinator
        and the stage that sends to it; without keys it may bind only loopback (or --insecure).
          nnsight-worker --connect tcp://127.0.0.1:5555 --model Models/tiny-license-gpt2
        """)

    @Option(name: .long, help: "The coordinator's control endpoint, e.g. tcp://127.0.0.1:5555.")
    var connect: String

    @Option(name: .long, help: "Endpoint to bind for activations (default: a free port on 127.0.0.1).")
    var bind: String = "tcp://127.0.0.1:*"

    @Option(name: .long, help: "A Hugging Face GPT-2 directory, or a hub name in the local Hugging Face cache (the same model as the coordinator's).")
    var model: String

    @Option(name: .long, help: "Worker id (default: host and process id).")
    var id: String?

    @Option(name: .long, help: "Compute threads for this worker (default: the cores this process may use, divided by --share).")
    var threads: Int?

    @Option(name: .long, help: "Workers sharing this machine's cores (sets the default --threads).")
    var share: Int = 1

    @Option(name: .long, help: ArgumentHelp(
        "CPUs to pin this worker to, e.g. 0,1: its main and ZeroMQ threads on the first, compute threads on the others in turn (default: not pinned).",
        discussion: "Workers sharing a machine pass messages faster when their main threads share a CPU."))
    var cpus: String?

    @Option(name: .long, help: "Seconds of coordinator silence before the worker registers again.")
    var coordinatorTimeout: Int = 10

    @Option(name: .long, help: "Seconds to wait for a stage assignment (at start and after losing the coordinator) before exiting.")
    var registerTimeout: Int = 60

    @Option(name: .long, help: "With --bind on every interface (tcp://0.0.0.0:PORT): the host name or address other stages and the coordinator reach this worker at (default: this machine's host name).")
    var advertise: String?

    @Flag(name: .long, help: "A spare: register without a range and take over the first one that becomes free (a worker lost; its traces are replayed).")
    var standby = false

    @Option(name: .long, help: "CURVE keys: DIR/NAME.key is this worker's, DIR/coordinator.pub the coordinator's (see `nnsight keygen`).")
    var keys: String?

    @Flag(name: .long, help: "Allow binding an address other than loopback without --keys.")
    var insecure = false

    @Option(name: .long, help: "Serve Prometheus metrics over HTTP at HOST:PORT (a bare PORT: loopback): /metrics, /healthz, /readyz (default: off).")
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("Log level on stderr (default: info).", valueName: "level"))
    var logLevel: Logger.Level = .info

    @OptionGroup var serving: ServingOptions

    /// "0,1" -> [0, 1]; each a CPU of this machine.
    static func parseCPUs(_ text: String) throws -> [Int] {
        let count = ProcessInfo.processInfo.processorCount
        let cpus = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !cpus.isEmpty, cpus.allSatisfy({ $0 != nil && $0! >= 0 && $0! < count }) else {
            throw ValidationError("--cpus '\(text)' is not a comma-separated list of CPUs 0..<\(count)")
        }
        return cpus.map { $0! }
    }

    static func main() {
        BLASRuntime.ensureFastKernels()
        ProcessTuning.keepLargeAllocationsInHeap()
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }

    func run() throws {
        LogSetup.bootstrap(level: logLevel)
        BLASRuntime.threads = threads ?? max(1, ComputePool.usableCores / max(1, share))
        // Before the ZeroMQ context exists: its I/O threads inherit the main thread's CPU.
        if let cpus { try ComputePool.shared.place(on: try Self.parseCPUs(cpus)) }
        let model: String
        do { model = try ModelLocator.resolve(self.model) } catch { throw ValidationError("\(error)") }
        var options = WorkerProcess.Options(connect: connect, bind: bind, model: model,
                                            workerId: id ?? "\(ProcessInfo.processInfo.hostName)-\(getpid())")
        options.coordinatorTimeoutMs = coordinatorTimeout * 1000
        options.assignmentTimeoutMs = registerTimeout * 1000
        options.standby = standby
        options.advertiseHost = advertise
        do {
            options.keys = try keys.map(KeyDirectory.load)
            _ = try options.keys?.requireCoordinatorKey()
            try BindPolicy.check(bind, keys: options.keys, insecure: insecure, flag: "--bind")
        } catch {
            throw ValidationError("\(error)")
        }
        serving.apply(to: &options)
        options.threads = BLASRuntime.threads
        let server: MetricsServer?
        do { server = try MetricsServer.start(metrics, registry: options.metrics.registry, probes: options.metrics.process.probes) }
        catch { throw ValidationError("\(error)") }
        defer { server?.stop() }
        try WorkerProcess(options).run()
    }
}

/// How a stage stores its weights and batches traces.
struct ServingOptions: ParsableArguments {
    @Option(name: .long, help: "How the weights are stored: f32 (exact to the oracle), bf16 or f16 (half the bytes, products in f32).")
    var dtype: WeightType = .f32

    @Option(name: .long, help: "Traces whose steps share one stacked pass, at most (1: no batching).")
    var maxBatch: Int = 16

    @Option(name: .long, help: "Milliseconds a stage with steps ready waits for more to share the pass.")
    var batchWindowMs: Double = 0

    @Option(name: .long, help: "KV-cache memory for this stage's traces, in MB; traces that do not fit wait for others to end (default: no limit).")
    var kvMemory: Int?

    @Option(name: .long, help: "Megabytes one value of a trace may take on this stage (an op's output, the prompt pass's widest activation); a trace over it ends with an error naming the op and the shape.")
    var maxValueMb: Int = 1024

    @Option(name: .long, help: "Seconds a trace's first step has to reach this stage after its fragment; a fragment whose steps never come (orphaned, or pushed by a peer that is not the coordinator) is freed then.")
    var firstStepTimeout: Int = 300

    func validate() throws {
        guard maxValueMb >= 1 else { throw ValidationError("--max-value-mb must be at least 1") }
        guard firstStepTimeout >= 1 else { throw ValidationError("--first-step-timeout must be at least 1") }
        guard maxBatch >= 1 else { throw ValidationError("--max-batch must be at least 1") }
        guard batchWindowMs >= 0, batchWindowMs <= 1000 else { throw ValidationError("--batch-window-ms must be within 0...1000") }
        if let kvMemory, kvMemory < 1 { throw ValidationError("--kv-memory must be at least 1 (MB)") }
    }

    func apply(to options: inout WorkerProcess.Options) {
        options.weightType = dtype
        options.maxBatch = maxBatch
        options.batchWindowMs = batchWindowMs
        options.kvMemoryBytes = kvMemory.map { $0 << 20 }
        options.maxValueBytes = maxValueMb << 20
        options.firstStepTimeoutMs = firstStepTimeout * 1000
    }
}

extension WeightType: ExpressibleByArgument {}
extension Logger.Level: @retroactive ExpressibleByArgument {}

