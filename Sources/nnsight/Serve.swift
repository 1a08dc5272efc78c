import ArgumentParser
import Coordinator
import Engine
import Foundation
import Logging
import Telemetry
import Wire

struct Serve: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        abstract: "Run a coordinator: workers register with it, clients send it traces.",
        discussion: """
        Waits for --workers worker processes (`nnsight-worker --connect ADDR --model DIR`), splits the
        model's layers across them (so that the stage reading the most weights per step reads as
        little as possible, or at --split boundaries), and serves traces from clients
        (`nnsight run SCRIPT.py --cluster ADDR --model DIR`, or LanguageModel.connect in Swift).
        A worker that stops answering for --worker-timeout seconds is dropped; new traces are refused
        until a replacement registers (a spare, `nnsight-worker --standby`, takes over at once; a
        dropped worker that wakes up is told so and registers again). Its traces wait up to
        --replay-timeout seconds for the replacement and are then replayed from their start, the
        client receiving nothing twice and the same results as an undisturbed run; without one they
        end with an error naming the worker. A coordinator that was itself stalled gives
        every worker its timeout afresh before judging it. Clients learn within 5 s that the
        coordinator is gone: it answers their heartbeats.
        With --keys DIR every connection is CURVE-encrypted and only the keys in DIR/authorized/ get
        past the handshake (refusals are logged); without it, binding anything but loopback is refused
        unless you pass --insecure.
          nnsight serve --model Models/tiny-license-gpt2 --listen tcp://127.0.0.1:5555 --workers 2
        """)

    @Option(name: .long, help: "A Hugging Face GPT-2 directory, or a hub name in the local Hugging Face cache (the workers must load the same model).")
    var model: String = "Models/tiny-license-gpt2"

    @Option(name: .long, help: "Control endpoint for workers and clients.")
    var listen: String = "tcp://127.0.0.1:5555"

    @Option(name: .long, help: "Endpoint where workers send results.")
    var results: String = "tcp://127.0.0.1:*"

    @Option(name: .long, help: "Workers (pipeline stages) to wait for.")
    var workers: Int = 2

    @Option(name: .long, help: "Layer boundaries between stages, e.g. 4,8 (default: even split).")
    var split: String?

    @Option(name: .long, help: "Seconds of silence after which a worker is dropped.")
    var workerTimeout: Int = 3

    @Option(name: .long, help: "Seconds a worker has to become ready (load its weights) after it is given a stage; past it the stage goes to another worker or spare.")
    var loadTimeout: Int = 120

    @Option(name: .long, help: "Seconds a trace whose worker died waits for a replacement (a spare: nnsight-worker --standby) before it ends with the error; it is then replayed exactly (0: end at once).")
    var replayTimeout: Int = 30

    @Option(name: .long, help: "Megabytes of results that may wait for one client that reads slower than its traces produce; past it the trace ends with an error that says so (nothing is dropped below it).")
    var clientBufferMb: Int = 1024

    @Option(name: .long, help: "Megabytes one value of a trace may take (any op's output, the prompt pass's widest activation); a larger one is refused before the trace runs.")
    var maxValueMb: Int = 1024

    @Option(name: .long, help: "Megabytes of KV cache one trace may need over every layer (its rows times prompt plus new tokens); a larger batch is refused before it runs.")
    var maxTraceMb: Int = 8192

    @Option(name: .long, help: "CURVE keys: DIR/NAME.key is the coordinator's, DIR/authorized/*.pub the clients and workers it accepts (see `nnsight keygen`).")
    var keys: String?

    @Flag(name: .long, help: "Allow binding an address other than loopback without --keys (traffic in the clear, anyone may connect).")
    var insecure = false

    @Option(name: .long, help: "Serve Prometheus metrics over HTTP at HOST:PORT (a bare PORT: loopback): /metrics, /healthz, /readyz (default: off).")
    var metrics: String?

    /// At info: one line per trace start and end, worker events.
    @OptionGroup var logging: LoggingOptions
    var defaultLogLevel: Logger.Level { .info }

    func run() throws {
        let model: String
        do { model = try ModelLocator.resolve(self.model) } catch { throw CLIError(description: "\(error)") }
        var options = ClusterCoordinator.Options(model: model, workers: workers)
        options.listen = listen
        options.results = results
        options.workerTimeoutMs = workerTimeout * 1000
        options.replayTimeoutMs = replayTimeout * 1000
        guard loadTimeout >= 1 else { throw ValidationError("--load-timeout must be at least 1") }
        options.loadTimeoutMs = loadTimeout * 1000
        guard clientBufferMb >= 1 else { throw ValidationError("--client-buffer-mb must be at least 1") }
        options.clientBufferBytes = clientBufferMb << 20
        guard maxValueMb >= 1, maxTraceMb >= 1 else { throw ValidationError("--max-value-mb and --max-trace-mb must be at least 1") }
        options.budget.maxValueBytes = maxValueMb << 20
        options.budget.maxCacheBytes = maxTraceMb << 20
        options.split = try split.map(parseLayerBoundaries)
        do {
            options.keys = try keys.map(KeyDirectory.load)
            try BindPolicy.check(listen, keys: options.keys, insecure: insecure, flag: "--listen")
            try BindPolicy.check(results, keys: options.keys, insecure: insecure, flag: "--results")
        } catch {
            throw CLIError(description: "\(error)")
        }
        if let k = options.keys {
            FileHandle.standardError.write(Data("CURVE on: key \(k.name) (\(k.own.publicKey)), \(k.authorized.count) authorized keys\n".utf8))
        }
        let coordinator = try ClusterCoordinator(options)
        FileHandle.standardError.write(Data("coordinator on \(coordinator.endpoint) (results \(coordinator.resultsEndpoint)); stages \(coordinator.stages)\n".utf8))
        let server: MetricsServer?
        do { server = try MetricsServer.start(metrics, registry: options.metrics.registry, probes: options.metrics.process.probes) }
        catch { throw CLIError(description: "\(error)") }
        defer { server?.stop() }
        try coordinator.serve()
    }
}
