import ArgumentParser
import Coordinator
import Engine
import Foundation
import Script

struct BenchTrace: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        commandName: "bench-trace",
        abstract: "Measure what interventions cost during generation.",
        discussion: """
        On a random-weight model of GPT-2 small's shape: 32 generated tokens from a 10-token prompt
        (a) with the Engine's own loop, (b) through the tracing API with no interventions, and
        (c) through the tracing API saving h[-1].output[0] and editing h[0].output at every step,
        (d) a trace script (client-side evaluation) that, at every step, prints the step's token
        (`.item()` inside `iter[:]`) and edits h[1] under a guard on h[0]'s values.
        Runs alternate; medians are printed. Release build:
          swift build -c release && .build/release/nnsight bench-trace --json
        """)

    @OptionGroup var logging: LoggingOptions

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Runs of each variant.")
    var repeats: Int = 5

    @Option(name: .long, help: "Pipeline stages (in-process).")
    var stages: Int = 1

    @OptionGroup var threads: ThreadOptions

    func run() throws {
        threads.apply()
        let config = GPT2Config.gpt2Small
        let weights = try GPT2Weights.random(config: config, seed: 1)
        let engine = try Pipeline(stages: [GPT2(weights: weights)])
        let models = try LocalClusterSplit.ranges(config: config, stages: stages).map {
            GPT2(weights: try GPT2Weights.random(config: config, seed: 1, layers: $0))
        }
        let model = try LanguageModel(stages: models, tokenizer: .bytesOnly())
        let prompt = (0..<10).map { ($0 * 7919) % config.vocabSize }
        let newTokens = 32

        var plainEngine: [Double] = [], plainTrace: [Double] = [], intervened: [Double] = [], scripted: [Double] = []
        // A generation's prompt pass of 128 tokens, alone and with lm_head.output saved at step 0.
        let longPrompt = (0..<128).map { ($0 * 7919 + 13) % config.vocabSize }
        var promptPass: [Double] = [], promptPassHead: [Double] = []
        let script = """
        with model.generate("abcdefghij", max_new_tokens=\(newTokens)) as tracer:
            for step in tracer.iter[:]:
                if model.transformer.h[0].output[0][:, -1].norm() > 0:
                    model.transformer.h[1].output[0][:, -1, :] *= 0.5
                print(step, model.lm_head.output[0, -1].argmax().item())

        """
        for _ in 0..<repeats {
            plainEngine.append(try timed {
                _ = try engine.generate(prompts: [prompt], GenerationParameters(maxNewTokens: newTokens, eosTokenId: nil, padTokenId: 0))
            })
            plainTrace.append(try timed {
                try model.generate(maxNewTokens: newTokens, eosTokenId: -1) { tracer in
                    tracer.invoke(tokens: prompt) {}
                }
            })
            intervened.append(try timed {
                try model.generate(maxNewTokens: newTokens, eosTokenId: -1) { tracer in
                    tracer.invoke(tokens: prompt) {
                        let hidden = tracer.list().save()
                        for _ in tracer.all() {
                            model.transformer.h[0].output[0][.all, -1, .all] = model.transformer.h[0].output[0][.all, -1, .all] * 0.5
                            hidden.append(model.transformer.h[-1].output[0])
                        }
                    }
                }
            })
            promptPass.append(try timed {
                try model.generate(maxNewTokens: 1, eosTokenId: -1) { tracer in tracer.invoke(tokens: longPrompt) {} }
            })
            promptPassHead.append(try timed {
                try model.generate(maxNewTokens: 1, eosTokenId: -1) { tracer in tracer.invoke(tokens: longPrompt) { _ = model.lmHead.output.save() } }
            })
            scripted.append(try timed {
                let outcome = ScriptRunner(model: model, file: "bench.py").run(source: script)
                if let error = outcome.error { throw error }
            })
        }
        let (e, p, i, s) = (median(plainEngine), median(plainTrace), median(intervened), median(scripted))
        let figures: [(String, Any)] = [
            ("tokens", newTokens), ("stages", stages), ("threads", BLASRuntime.threads),
            ("engine_ms", round3(e * 1000)), ("trace_plain_ms", round3(p * 1000)), ("trace_intervened_ms", round3(i * 1000)),
            ("trace_script_print_guard_ms", round3(s * 1000)),
            ("intervention_overhead_pct", round3((i / p - 1) * 100)),
            ("script_print_guard_overhead_pct", round3((s / p - 1) * 100)),
            ("tracing_overhead_pct", round3((p / e - 1) * 100)),
            ("generate_prompt_pass_128_ms", round3(median(promptPass) * 1000)),
            ("generate_prompt_pass_128_lm_head_saved_ms", round3(median(promptPassHead) * 1000)),
            ("total_overhead_vs_engine_pct", round3((i / e - 1) * 100)),
        ]
        try printFigures(figures, json: json)
    }
}
