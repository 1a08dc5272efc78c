import ArgumentParser
import Coordinator
import Engine
import Foundation
import Script

struct Run: ParsableCommand {
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

        What is supported: with model.generate/trace/tracer.invoke, for loops over tracer.iter[...],
        tracer.all(), lists, ranges, enumerate and zip; if/elif/else; assignment (also into tensors,
        `x[:] = 0`, `x[:, -1, :] = y`); tracer.next(); .save(); f-strings; list comprehensions;
        print; model.tokenizer(...), .decode, .encode; tensor .shape, .tolist(), .item().
        Anything else (while, def, class, lambda, other imports, ...) is an error naming its line
        and column. Unlike nnsight 0.8.1, code after an unbounded `tracer.iter[:]` loop runs.

        The layers run as --workers in-process pipeline stages over ZeroMQ inproc sockets (worker
        processes and --cluster arrive with the cluster issue). There is no authentication.
        """)

    @Argument(help: "The trace script.")
    var script: String

    @Option(name: .long, help: "A Hugging Face GPT-2 directory.")
    var model: String = "Models/tiny-license-gpt2"

    @Option(name: .long, help: "Pipeline stages to split the layers across (default: the machine's cores).")
    var workers: Int?

    @Option(name: .long, help: "Address of a running coordinator (not available yet).")
    var cluster: String?

    @Option(name: .long, help: "Write {\"stdout\", \"saves\", \"error\"} as JSON to this file.")
    var saveJson: String?

    @Option(name: .long, help: "OpenBLAS threads (default: the machine's cores).")
    var threads: Int?

    func run() throws {
        if cluster != nil {
            throw CLIError(description: "--cluster: connecting to a running coordinator is not available yet (it arrives with the cluster issue); use --workers")
        }
        BLASRuntime.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard let source = try? String(contentsOfFile: script, encoding: .utf8) else {
            throw CLIError(description: "cannot read script \(script)")
        }
        let stages = workers ?? ProcessInfo.processInfo.activeProcessorCount
        guard stages >= 1 else { throw CLIError(description: "--workers must be at least 1") }
        let languageModel = try LanguageModel.load(model, stages: stages)
        let runner = ScriptRunner(model: languageModel, file: script)
        let outcome = runner.run(source: source) { text in
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if let saveJson {
            try outcome.json.write(toFile: saveJson, atomically: true, encoding: .utf8)
        }
        if let error = outcome.error {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
