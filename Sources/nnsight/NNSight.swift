import ArgumentParser
import Engine
import Foundation
import Logging
import Wire

@main
struct NNSight: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nnsight",
        abstract: "Run GPT-2 and look inside it while it generates.",
        subcommands: [Generate.self, Run.self, Serve.self, Bench.self, BenchWire.self, BenchTrace.self, Info.self],
        defaultSubcommand: Generate.self)

    static func main() {
        BLASRuntime.ensureFastKernels()
        ProcessTuning.keepLargeAllocationsInHeap()
        // Logs go to stderr (stdout is the script's); `serve` logs at info, the rest at warning.
        let verbose = CommandLine.arguments.dropFirst().first == "serve"
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = verbose ? .info : .warning
            return handler
        }
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            exit(withError: error)
        }
    }
}

/// Flags shared by every command that loads a checkpoint.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face GPT-2 directory (config.json, model.safetensors, vocab.json, merges.txt).")
    var model: String = "Models/tiny-license-gpt2"

    @Option(name: .long, help: "Compute threads (default: the cores this process may use).")
    var threads: Int?

    func applyThreads() {
        BLASRuntime.threads = threads ?? ComputePool.usableCores
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
