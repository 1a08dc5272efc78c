import ArgumentParser
import Engine
import Foundation

struct Generate: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        abstract: "Continue prompts with GPT-2 (greedy by default).",
        discussion: """
        With no arguments, continues the built-in license-text model's demo prompt:
          nnsight generate
          nnsight generate --model /path/to/gpt2 --prompt "The Eiffel Tower is in the city of" --max-new-tokens 5
        Several --prompt flags run as one left-padded batch.
        """)

    @OptionGroup var logging: LoggingOptions

    @OptionGroup var options: ModelOptions

    @Option(name: .long, help: "A prompt (repeat for a batch).")
    var prompt: [String] = ["This program is free software; you can redistribute it"]

    @Option(name: .long, help: "Tokens to generate per prompt.")
    var maxNewTokens: Int = 12

    @Option(name: .long, help: "Sampling temperature; 0 is greedy.")
    var temperature: Float = 0

    @Option(name: .long, help: "Sample among the k most likely tokens (0: all).")
    var topK: Int = 0

    @Option(name: .long, help: "Sample within the top-p probability mass (1: all).")
    var topP: Float = 1

    @Option(name: .long, help: "Seed for sampling.")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Split the layers into stages at these boundaries, e.g. 2 or 4,8 (in-process).")
    var split: String?

    func run() throws {
        options.threads.apply()
        let splits = try split.map(parseLayerBoundaries) ?? []
        let tokenizer = try GPT2Tokenizer(directory: options.model)
        let pipeline = try Pipeline(directory: options.model, splits: splits)
        let eos = pipeline.config.eosTokenId ?? tokenizer.endOfTextId
        let parameters = GenerationParameters(
            maxNewTokens: maxNewTokens,
            sampling: SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed),
            eosTokenId: eos, padTokenId: tokenizer.endOfTextId)
        let result = try pipeline.generate(prompts: prompt.map(tokenizer.encode), parameters)
        for (b, text) in prompt.enumerated() {
            print(text + tokenizer.decode(result.generated(b)))
        }
    }
}
