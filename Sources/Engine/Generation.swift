/// What a generation produced: every row's ids, padded prompt included (`[B, T + new]`), as
/// nnsight's `model.generator.output`.
public struct GenerationResult: Sendable, Equatable {
    public var sequences: [[Int]]
    /// Padded prompt length T.
    public var promptLength: Int
    /// Forward passes run (max_new_tokens unless every row reached eos first).
    public var steps: Int

    /// The generated ids of row `b`, prompt excluded.
    public func generated(_ b: Int) -> [Int] { Array(sequences[b][promptLength...]) }
}

/// Options of one generation.
public struct GenerationParameters: Sendable, Equatable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// Stop when every row has produced it; nil never stops early.
    public var eosTokenId: Int?
    /// Fed to rows that already finished, as Hugging Face does.
    public var padTokenId: Int

    public init(maxNewTokens: Int, sampling: SamplingParameters = SamplingParameters(), eosTokenId: Int?, padTokenId: Int) {
        self.maxNewTokens = maxNewTokens
        self.sampling = sampling
        self.eosTokenId = eosTokenId
        self.padTokenId = padTokenId
    }
}

/// A whole model as a chain of stages run in this process, one after the other: the Engine's own
/// generation loop (a cluster's stages run it over the wire instead: the last stage starts each step).
///
/// ```swift
/// let pipeline = try Pipeline(directory: dir, splits: [2])   // stages [0,2) and [2,4)
/// let result = try pipeline.generate(prompts: [ids], GenerationParameters(maxNewTokens: 5, eosTokenId: 1999, padTokenId: 1999))
/// ```
public final class Pipeline {
    public let config: GPT2Config
    public let stages: [GPT2]

    public init(stages: [GPT2]) throws {
        guard let first = stages.first else { throw EngineError.invalidArgument("a pipeline needs at least one stage") }
        config = first.config
        var next = 0
        for stage in stages {
            guard stage.layers.lowerBound == next else {
                throw EngineError.invalidArgument("stage \(stage.layers) does not start at layer \(next)")
            }
            next = stage.layers.upperBound
        }
        guard next == config.nLayer else { throw EngineError.invalidArgument("stages end at layer \(next), model has \(config.nLayer)") }
        self.stages = stages
    }

    /// Loads a checkpoint split at the given layer boundaries (`[]`: one stage).
    public convenience init(directory: String, splits: [Int] = [], weightType: WeightType = .f32) throws {
        let config = try GPT2Config.load(directory: directory)
        let bounds = [0] + splits + [config.nLayer]
        try self.init(stages: try zip(bounds, bounds.dropFirst()).map { a, b in
            GPT2(weights: try GPT2Weights.load(directory: directory, config: config, layers: a..<b, type: weightType))
        })
    }

    public func makeStates(batch: Int, capacity: Int) -> [InferenceState] {
        stages.map { InferenceState(config: config, layers: $0.layers.count, batch: batch, capacity: capacity) }
    }

    /// One step through every stage; returns the last stage's logits.
    public func forward(_ step: StepInput, states: [InferenceState], hooks: (any HookHandler)? = nil,
                        allLogits: Bool = false) throws -> StageOutput {
        var output: StageOutput?
        for (stage, state) in zip(stages, states) {
            output = try stage.forward(step, hidden: output?.values, state: state, hooks: hooks, allLogits: allLogits)
        }
        return output!
    }

    /// Generates up to `maxNewTokens` for each prompt (left-padded into one batch).
    /// `hooks(step)` gives the handler for each step (step 0 is the prompt pass).
    public func generate(prompts: [[Int]], _ parameters: GenerationParameters,
                         hooks: ((Int) -> (any HookHandler)?)? = nil) throws -> GenerationResult {
        try parameters.sampling.validate()
        guard !prompts.isEmpty, prompts.allSatisfy({ !$0.isEmpty }) else {
            throw EngineError.invalidArgument("every prompt needs at least one token")
        }
        guard parameters.maxNewTokens >= 1 else { throw EngineError.invalidArgument("max_new_tokens must be >= 1") }
        for id in prompts.joined() where id < 0 || id >= config.vocabSize {
            throw EngineError.tokenOutOfRange(id: id, vocabSize: config.vocabSize)
        }
        let batch = PaddedBatch(prompts: prompts, padTokenId: parameters.padTokenId)
        let B = batch.batch, T = batch.length
        let needed = T + parameters.maxNewTokens - 1
        guard needed <= config.nPositions else { throw EngineError.promptTooLong(length: needed, limit: config.nPositions) }
        let states = makeStates(batch: B, capacity: needed)

        var sequences = batch.tokens
        var finished = [Bool](repeating: false, count: B)
        var sampler = Sampler(parameters.sampling)
        var step = batch.firstStep
        var steps = 0
        while steps < parameters.maxNewTokens {
            let logits = try forward(step, states: states, hooks: hooks?(steps))
            let tokens = sampler.nextTokens(logits, finished: &finished, eos: parameters.eosTokenId, pad: parameters.padTokenId)
            for b in 0..<B { sequences[b].append(tokens[b]) }
            steps += 1
            if finished.allSatisfy({ $0 }) { break }
            step = .decode(tokens: tokens, after: step.lastPositions)
        }
        return GenerationResult(sequences: sequences, promptLength: T, steps: steps)
    }
}
