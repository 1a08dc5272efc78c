import Engine
import Foundation
import Wire
import Worker

/// A GPT-2 to trace, as nnsight's `LanguageModel`: module envoys mirror Hugging Face's tree
/// (`model.transformer.h[3].attn`, `model.lmHead`, `model.generator`), and `generate`/`trace`
/// record a closure into an intervention graph that pipeline stages run.
///
/// ```swift
/// let model = try LanguageModel.load("Models/tiny-license-gpt2", stages: 2)
/// var tokens: SavedList!, output: Saved!
/// try model.generate("This program is free software", maxNewTokens: 5) { tracer in
///     tokens = tracer.list().save()
///     for _ in tracer.iter[1..<3] { tokens.append(model.lmHead.output[0, -1].argmax(dim: -1)) }
///     output = model.generator.output.save()
/// }
/// print(model.tokenizer.decode(try output.value[0].ints))
/// ```
///
/// Not thread-safe: use a model from one thread (its sockets belong to that thread).
public final class LanguageModel {
    public let config: GPT2Config
    public let tokenizer: GPT2Tokenizer
    public let transformer: TransformerEnvoy
    public let lmHead = ModuleEnvoy(path: "lm_head")
    public let generator = GeneratorEnvoy()
    private let backend: TraceBackend

    /// Called while a trace runs, as values stream in: saved values, and each step's tokens.
    public var onEvent: ((TraceEvent) -> Void)?

    /// Loads a Hugging Face GPT-2 directory and starts `stages` in-process pipeline stages.
    public static func load(_ directory: String, stages: Int = 1) throws -> LanguageModel {
        let cluster = try LocalCluster(directory: directory, stages: stages)
        return LanguageModel(tokenizer: try GPT2Tokenizer(directory: directory), config: cluster.config,
                             backend: try LocalBackend(cluster: cluster))
    }

    /// A model from stages already in memory (layer order), e.g. random weights for benchmarks;
    /// prompts are then given as token ids (`tracer.invoke(tokens:)`).
    public convenience init(stages models: [GPT2], tokenizer: GPT2Tokenizer) throws {
        let cluster = LocalCluster(models: models)
        self.init(tokenizer: tokenizer, config: cluster.config, backend: try LocalBackend(cluster: cluster))
    }

    /// A client of a running coordinator (`nnsight serve`, or the one `nnsight run --workers N`
    /// starts). The directory provides the config and tokenizer; the weights live on the workers.
    public static func connect(_ endpoint: String, model directory: String, timeoutSeconds: Int = 300) throws -> LanguageModel {
        let config = try GPT2Config.load(directory: directory)
        return LanguageModel(tokenizer: try GPT2Tokenizer(directory: directory), config: config,
                             backend: try RemoteBackend(endpoint: endpoint, modelId: config.architectureId, timeoutSeconds: timeoutSeconds))
    }

    init(tokenizer: GPT2Tokenizer, config: GPT2Config, backend: TraceBackend) {
        self.tokenizer = tokenizer
        self.config = config
        self.backend = backend
        transformer = TransformerEnvoy(layers: config.nLayer)
    }

    /// Multi-token generation. With a prompt, the closure runs inside its invoke; without one,
    /// call `tracer.invoke(prompt) { ... }` for each prompt of the batch. Generation stops after
    /// `maxNewTokens` steps or when every row has produced `eosTokenId` (the model's by default).
    public func generate(_ prompt: String? = nil, maxNewTokens: Int, sampling: SamplingParameters = SamplingParameters(),
                         eosTokenId: Int? = nil, _ body: (Tracer) throws -> Void) throws {
        try run(prompt, maxNewTokens: maxNewTokens, sampling: sampling, eos: eosTokenId ?? config.eosTokenId, body)
    }

    /// One forward pass (`model.trace`): step 0 only.
    public func trace(_ prompt: String? = nil, _ body: (Tracer) throws -> Void) throws {
        try run(prompt, maxNewTokens: 1, sampling: SamplingParameters(), eos: config.eosTokenId, body)
    }

    private func run(_ prompt: String?, maxNewTokens: Int, sampling: SamplingParameters, eos: Int?,
                     _ body: (Tracer) throws -> Void) throws {
        guard maxNewTokens >= 1 else { throw TraceError.invalidGraph("max_new_tokens must be at least 1") }
        let recorder = TraceRecorder(layers: config.nLayer, maxNewTokens: maxNewTokens)
        let tracer = Tracer(recorder: recorder, tokenize: tokenizer.encode)
        TraceRecorder.active = recorder
        defer { TraceRecorder.active = nil }
        if let prompt {
            try tracer.invoke(prompt) { try body(tracer) }
        } else {
            try body(tracer)
        }
        TraceRecorder.active = nil
        let prompts = recorder.invokes.map { $0.tokenIds.map(Int.init) }
        guard !prompts.isEmpty else { throw TraceError.invalidGraph("the trace has no prompt: pass one or call tracer.invoke(prompt)") }
        for (i, p) in prompts.enumerated() where p.isEmpty { throw TraceError.invalidGraph("invoke \(i) has an empty prompt") }
        let longest = prompts.map(\.count).max()!
        guard longest + maxNewTokens - 1 <= config.nPositions else {
            throw TraceError.invalidGraph("prompt of \(longest) tokens + \(maxNewTokens) new tokens exceeds n_positions = \(config.nPositions)")
        }
        try sampling.validate()
        if let first = recorder.problems.first { throw TraceError.invalidGraph(first) }

        let graph = Nnsight_V1_Graph.with {
            $0.nodes = recorder.nodes
            $0.invokes = recorder.invokes
            $0.generation = .with {
                $0.maxNewTokens = UInt32(maxNewTokens)
                $0.padTokenID = Int64(tokenizer.endOfTextId)
                if let eos { $0.eosTokenID = Int64(eos) }
                $0.sampling = .with { $0.temperature = sampling.temperature; $0.topK = UInt32(sampling.topK); $0.topP = sampling.topP; $0.seed = sampling.seed }
            }
        }
        try backend.execute(graph) { event in
            if case let .saved(id, _, value) = event {
                if let saved = recorder.saves[id] { saved.result = .success(value) }
                if let (list, slot) = recorder.appends[id] { list.values[slot] = value }
            }
            onEvent?(event)
        }
    }
}

/// What streams back while a trace runs.
public enum TraceEvent: Sendable {
    /// A saved or appended value: its node id (the save's handle), step and value.
    case saved(id: UInt32, step: Int, value: NDArray)
    /// The token each batch row produced at a step.
    case tokens(step: Int, ids: [Int])
}

extension LanguageModel {
    /// Runs a generation and returns its events as an async sequence (saved values and each
    /// step's tokens, as they arrive); the sequence ends when the trace does. The model must not
    /// be used by anything else until then.
    ///
    /// ```swift
    /// for try await event in model.events(maxNewTokens: 5) { tracer in
    ///     tracer.invoke("Hello") { _ = model.transformer.h[-1].output[0].save() }
    /// } { print(event) }
    /// ```
    public func events(_ prompt: String? = nil, maxNewTokens: Int, _ body: @escaping (Tracer) throws -> Void)
        -> AsyncThrowingStream<TraceEvent, Error> {
        nonisolated(unsafe) let model = self
        nonisolated(unsafe) let body = body
        return AsyncThrowingStream { continuation in
            let thread = Thread {
                let previous = model.onEvent
                model.onEvent = { continuation.yield($0) }
                defer { model.onEvent = previous }
                do {
                    try model.generate(prompt, maxNewTokens: maxNewTokens, body)
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.start()
        }
    }
}

extension NDArray {
    /// The elements as integers (token ids).
    public var ints: [Int] { data.map { Int($0) } }
    /// The elements as floats.
    public var floats: [Float] { data.map { Float($0) } }

    /// Row `i` of the first dim, as nnsight's `output[0]`.
    public subscript(_ i: Int) -> NDArray { (try? indexed([.at(i)])) ?? self }
}
