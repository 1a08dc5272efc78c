import ArgumentParser
import Coordinator
import Engine
import Foundation
import Logging

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a coordinator: workers register with it, clients send it traces.",
        discussion: """
        Waits for --workers worker processes (`nnsight-worker --connect ADDR --model DIR`), splits the
        model's layers across them (so that the stage reading the most weights per step reads as
        little as possible, or at --split boundaries), and serves traces from clients
        (`nnsight run SCRIPT.py --cluster ADDR --model DIR`, or LanguageModel.connect in Swift).
        A worker that stops answering for --worker-timeout seconds is dropped: its traces end with an
        error naming it, and new traces are refused until a replacement registers (a dropped worker
        that wakes up is told so and registers again). A coordinator that was itself stalled gives
        every worker its timeout afresh before judging it. Clients learn within 5 s that the
        coordinator is gone: it answers their heartbeats.
        No authentication yet: every socket binds to 127.0.0.1 unless you pass other addresses.
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

    func run() throws {
        let model: String
        do { model = try ModelLocator.resolve(self.model) } catch { throw CLIError(description: "\(error)") }
        var options = ClusterCoordinator.Options(model: model, workers: workers)
        options.listen = listen
        options.results = results
        options.workerTimeoutMs = workerTimeout * 1000
        options.split = try split.map(parseLayerBoundaries)
        let coordinator = try ClusterCoordinator(options)
        FileHandle.standardError.write(Data("coordinator on \(coordinator.endpoint) (results \(coordinator.resultsEndpoint)); stages \(coordinator.stages)\n".utf8))
        try coordinator.serve()
    }
}
