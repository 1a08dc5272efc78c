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
/// Not thread-safe: use a model from one thread (its coordinator sockets belong to that thread).
public final class LanguageModel {
    public let config: GPT2Config
    public let tokenizer: GPT2Tokenizer
    public let transformer: TransformerEnvoy
    public let lmHead = ModuleEnvoy(path: "lm_head")
    public let generator = GeneratorEnvoy()
    public var stages: [Range<Int>] { cluster.stages }

    private let cluster: LocalCluster
    private let runner: TraceRunner

    /// Loads a Hugging Face GPT-2 directory and starts `stages` in-process pipeline stages.
    public static func load(_ directory: String, stages: Int = 1) throws -> LanguageModel {
        try LanguageModel(directory: directory, stages: stages)
    }

    init(directory: String, stages: Int) throws {
        tokenizer = try GPT2Tokenizer(directory: directory)
        cluster = try LocalCluster(directory: directory, stages: stages)
        config = cluster.config
        transformer = TransformerEnvoy(layers: config.nLayer)
        runner = try TraceRunner(context: cluster.context, stageEndpoints: cluster.stageEndpoints,
                                 coordinatorEndpoint: cluster.coordinatorEndpoint)
    }

    /// A model from stages already in memory (layer order), e.g. random weights for benchmarks;
    /// prompts are then given as token ids (`tracer.invoke(tokens:)`).
    public init(stages models: [GPT2], tokenizer: GPT2Tokenizer) throws {
        self.tokenizer = tokenizer
        cluster = LocalCluster(models: models)
        config = cluster.config
        transformer = TransformerEnvoy(layers: config.nLayer)
        runner = try TraceRunner(context: cluster.context, stageEndpoints: cluster.stageEndpoints,
                                 coordinatorEndpoint: cluster.coordinatorEndpoint)
    }

    deinit { cluster.shutdown(using: runner.pushes) }

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

        let generation = Nnsight_V1_GenerationParameters.with {
            $0.maxNewTokens = UInt32(maxNewTokens)
            $0.padTokenID = Int64(tokenizer.endOfTextId)
            if let eos { $0.eosTokenID = Int64(eos) }
            $0.sampling = .with { $0.temperature = sampling.temperature; $0.topK = UInt32(sampling.topK); $0.topP = sampling.topP; $0.seed = sampling.seed }
        }
        let compiled = try GraphCompiler(config: config, stages: cluster.stages).compile(
            nodes: recorder.nodes, invokes: recorder.invokes, generation: generation, limits: Nnsight_V1_Limits(),
            problems: recorder.problems)
        let outcome = try runner.run(compiled, prompts: prompts, generation: generation) { saved in
            deliver(saved.saveID, NDArray((try? HostTensor(saved.value)) ?? HostTensor(shape: [0], floats: [])), recorder)
        }
        try evaluateClientNodes(compiled.clientNodes, outcome: outcome, recorder: recorder)
    }

    private func deliver(_ id: UInt32, _ value: NDArray, _ recorder: TraceRecorder) {
        if let saved = recorder.saves[id] { saved.result = .success(value) }
        if let (list, slot) = recorder.appends[id] { list.values[slot] = value }
    }

    /// Nodes on `model.generator.output` and `model.transformer.inputs`, once generation is done.
    private func evaluateClientNodes(_ nodes: [Nnsight_V1_Node], outcome: RunOutcome, recorder: TraceRecorder) throws {
        let rowOf: [Int32: Int] = Dictionary(uniqueKeysWithValues: recorder.invokes.indices.map { (Int32($0), $0) })
        var values: [UInt32: NDArray] = [:]
        for node in nodes {
            let step = Int(node.steps.first ?? 0)
            func rows(_ matrix: [[Int]]) -> NDArray {
                let selected = node.invoke >= 0 ? [matrix[rowOf[node.invoke] ?? 0]] : matrix
                return NDArray(shape: [selected.count, selected.first?.count ?? 0], dtype: .int64, data: selected.joined().map(Double.init))
            }
            switch node.kind {
            case let .read(read)?:
                if read.path == "generator" {
                    values[node.id] = rows(outcome.sequences)
                } else if step < outcome.inputs.count {
                    let inputs = outcome.inputs[step]
                    switch read.path {
                    case "transformer.inputs.input_ids": values[node.id] = rows(inputs.tokens)
                    case "transformer.inputs.attention_mask":
                        // The mask covers every position so far, as transformers passes it.
                        let full = (0...step).map { outcome.inputs[$0].mask }.reduce(into: [[Int]](repeating: [], count: outcome.sequences.count)) { acc, m in
                            for b in acc.indices { acc[b] += m[b] }
                        }
                        values[node.id] = rows(full)
                    default: values[node.id] = rows(inputs.positions)
                    }
                }
            case let .constant(c)?:
                values[node.id] = NDArray(try HostTensor(c.value))
            case let .op(op)?:
                if op.inputs.allSatisfy({ values[$0] != nil }) {
                    do { values[node.id] = try GraphOps.evaluate(op, tensors: values) }
                    catch { throw TraceError.runtime("node \(node.id) (line \(node.line)): \(error)") }
                }
            case let .save(save)?:
                if let v = values[save.node] { recorder.saves[node.id]?.result = .success(v) }
            case let .append(append)?:
                if let v = values[append.node], let (list, slot) = recorder.appends[node.id] { list.values[slot] = v }
            default:
                continue
            }
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
