import ArgumentParser
import Engine
import Foundation
import Wire

/// A pipeline stage's process. Serving over ZeroMQ arrives with the Cluster issue; today it
/// loads the layer range it would serve and reports what that costs.
@main
struct WorkerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nnsight-worker",
        abstract: "Load one pipeline stage of a GPT-2 checkpoint (serving arrives with the cluster).")

    @Option(name: .long, help: "A Hugging Face GPT-2 directory.")
    var model: String

    @Option(name: .long, help: "Half-open layer range a:b this stage owns (default: all layers).")
    var layers: String?

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
        let config = try GPT2Config.load(directory: model)
        var range = 0..<config.nLayer
        if let layers {
            let parts = layers.split(separator: ":").compactMap { Int($0) }
            guard parts.count == 2, parts[0] < parts[1] else {
                throw ValidationError("--layers must look like 0:6, got '\(layers)'")
            }
            range = parts[0]..<parts[1]
        }
        let weights = try GPT2Weights.load(directory: model, config: config, layers: range)
        print("stage \(range.lowerBound)..<\(range.upperBound): \(weights.parameterCount) parameters, " +
              "embeddings: \(weights.hasEmbeddings), head: \(weights.hasHead), BLAS core \(BLASRuntime.coreName)")
    }
}
