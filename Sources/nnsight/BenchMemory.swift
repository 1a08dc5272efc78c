import ArgumentParser
import Coordinator
import Engine
import Foundation
import Telemetry

/// Peak memory of a trace that saves `lm_head.output` over a long prompt.
struct BenchMemory: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-memory",
        abstract: "Peak resident memory of a trace that saves lm_head.output (GPT-2 small's shape).",
        discussion: """
        Random weights of GPT-2 small's shape on one in-process stage; one forward pass over a
        prompt of --tokens ids saving model.lm_head.output ([1, T, 50257] float32). Prints the
        process's peak RSS before and after the trace (VmHWM), and the trace's wall time.
          swift build -c release && .build/release/nnsight bench-memory --tokens 512 --json
        """)

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    @Option(name: .long, help: "Prompt length.")
    var tokens: Int = 512

    func run() throws {
        let config = GPT2Config.gpt2Small
        let model = try LanguageModel(stages: [GPT2(weights: try GPT2Weights.random(config: config, seed: 1))], tokenizer: .bytesOnly())
        let prompt = (0..<tokens).map { ($0 * 7919) % config.vocabSize }
        // A warm-up trace that saves nothing, so that the baseline includes the workspace.
        try model.trace { tracer in tracer.invoke(tokens: prompt) {} }
        let baseline = Self.peakRSSMegabytes()
        var logits: Saved!
        let seconds = try timed {
            try model.trace { tracer in tracer.invoke(tokens: prompt) { logits = model.lmHead.output.save() } }
        }
        let shape = try logits.value.shape
        let peak = Self.peakRSSMegabytes()
        let savedMegabytes = Double(shape.reduce(1, *) * 4) / 1_048_576
        try printFigures([
            ("tokens", tokens), ("saved_shape", "\(shape)"), ("saved_mb", round3(savedMegabytes)),
            ("peak_rss_before_trace_mb", round3(baseline)), ("peak_rss_after_trace_mb", round3(peak)),
            ("trace_added_mb", round3(peak - baseline)), ("trace_ms", round3(seconds * 1000)),
        ], json: json)
    }

    static func peakRSSMegabytes() -> Double { Double(ProcessMemory.peak() ?? 0) / 1_048_576 }
}
