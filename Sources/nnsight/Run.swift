import ArgumentParser
import Coordinator
import Engine
import Foundation
import Logging
import Script
import Wire

struct Run: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        abstract: "Run a trace script written in nnsight's Python syntax.",
        discussion: """
        SCRIPT.py is nnsight code with `model` predefined as the loaded language model, e.g.

          with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
              tokens = list().save()
              for step in tracer.iter[1:3]:
                  tokens.append(model.lm_head.output[0, -1].argmax(dim=-1))
              output = model.generator.output.save()
          print(model.tokenizer.decode(output[0]))

        A script may begin as nnsight's docs do (`from nnsight import LanguageModel`,
        `model = LanguageModel("openai-community/gpt2", device_map="auto")`): without --model, the
        name is a directory or a hub name in the local Hugging Face cache (never downloaded).
        Inside traces values have static shapes (x.shape is a plain value), print and Python on
        traced values run on the client as the values arrive, `if` on a traced value is a guarded
        region, and torch's ops (torch.softmax, x.topk(3), ...) are graph ops; def, lambda, while,
        dicts and the usual builtins work (see the README). Anything else (class, try, other
        imports, ...) is an error naming its line and column. Unlike nnsight 0.8.1, code after an
        unbounded `tracer.iter[:]` loop runs.

        --workers N starts a coordinator and N worker processes on this machine (127.0.0.1), splits the
        layers across them, runs the script, and stops them; --cluster ADDR sends the traces to a
        running coordinator (`nnsight serve`) instead; --in-process runs the stages as threads.
        --keys DIR connects with CURVE to a coordinator that requires keys (`nnsight keygen`).
        """)

    @Argument(help: "The trace script.")
    var script: String

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "Worker processes to start, one pipeline stage each (default: the cores this process may use).")
    var workers: Int?

    @Option(name: .long, help: "Address of a running coordinator, e.g. tcp://127.0.0.1:5555 (no workers are started).")
    var cluster: String?

    @Flag(name: .long, help: "Run the stages as threads of this process instead of worker processes.")
    var inProcess = false

    @OptionGroup var local: LocalWorkerOptions

    @Flag(name: .long, help: "Print each step's generated tokens to stderr as they arrive.")
    var streamTokens = false

    @Option(name: .long, help: "Write {\"stdout\", \"saves\", \"error\"} as JSON to this file.")
    var saveJson: String?

    @OptionGroup var logging: LoggingOptions

    @Option(name: .long, help: "With --cluster: CURVE keys, DIR/NAME.key this client's and DIR/coordinator.pub the coordinator's (see `nnsight keygen`).")
    var keys: String?

    @Option(name: .long, help: "Statements the script may execute before it is stopped as a runaway (default: 10000000).")
    var maxStatements = ScriptLimits().maxStatements

    @Option(name: .long, help: "MB the script's own values may grow this process by (default: 2048; the model's weights do not count).")
    var maxMemory = ScriptLimits().maxMemoryBytes >> 20

    func run() throws {
        guard maxStatements > 0, maxMemory > 0 else { throw CLIError(description: "--max-statements and --max-memory must be positive") }
        if keys != nil && cluster == nil { throw CLIError(description: "--keys is for --cluster (local workers stay on loopback)") }
        if cluster != nil && (workers != nil || inProcess) {
            throw CLIError(description: "--cluster uses the coordinator's workers: drop --workers / --in-process")
        }
        options.threads.apply()
        guard let source = try? String(contentsOfFile: script, encoding: .utf8) else {
            throw CLIError(description: "cannot read script \(script)")
        }
        // --model wins; else the script's `LanguageModel("NAME")` preamble; else the built-in model.
        let model: String
        do {
            if options.modelName != nil {
                model = try options.directory()
            } else if let name = ScriptRunner.preambleModelName(in: source) {
                model = try ModelLocator.resolve(name)
            } else {
                model = ModelOptions.builtIn
            }
        } catch {
            throw CLIError(description: "\(error)")
        }
        let stages = workers ?? ComputePool.usableCores
        guard stages >= 1 else { throw CLIError(description: "--workers must be at least 1") }
        var processCluster: ProcessCluster?
        defer { processCluster?.stop() }
        let languageModel: LanguageModel
        if let cluster {
            let keyDirectory: KeyDirectory?
            do { keyDirectory = try keys.map(KeyDirectory.load) } catch { throw CLIError(description: "\(error)") }
            languageModel = try LanguageModel.connect(cluster, model: model, keys: keyDirectory)
        } else if inProcess {
            languageModel = try LanguageModel.load(model, stages: stages, weightType: local.dtype)
        } else {
            processCluster = try local.startCluster(model: model, workers: stages)
            languageModel = try LanguageModel.connect(processCluster!.endpoint, model: model)
        }
        if streamTokens {
            let tokenizer = languageModel.tokenizer
            languageModel.onEvent = { event in
                if case let .tokens(step, ids) = event {
                    FileHandle.standardError.write(Data("step \(step): \(ids.map { tokenizer.decode([$0]).debugDescription }.joined(separator: " "))\n".utf8))
                }
            }
        }
        let runner = ScriptRunner(model: languageModel, file: script)
        runner.limits.maxStatements = maxStatements
        runner.limits.maxMemoryBytes = maxMemory << 20
        let outcome = runner.run(source: source) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if let saveJson {
            try outcome.json.write(toFile: saveJson, atomically: true, encoding: .utf8)
        }
        if let error = outcome.error {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            processCluster?.stop()
            throw ExitCode(1)
        }
    }
}
