import Engine
import Foundation
@_exported import Graph
import Wire

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
    /// Every field of the checkpoint's config.json (empty for a model built in memory).
    public let configFields: ConfigFields
    public let transformer: TransformerEnvoy
    public let lmHead: ModuleEnvoy
    public let generator: GeneratorEnvoy
    private let backend: TraceBackend

    /// Called while a trace runs, as values stream in: saved values, and each step's tokens.
    public var onEvent: ((TraceEvent) -> Void)?
    /// The session being recorded (`session { }`): its traces wait to run as one submission.
    private var recording: SessionRecording?

    /// Loads a Hugging Face GPT-2 directory and starts `stages` in-process pipeline stages.
    public static func load(_ directory: String, stages: Int = 1, weightType: WeightType = .f32) throws -> LanguageModel {
        let cluster = try LocalCluster(directory: directory, stages: stages, weightType: weightType)
        return LanguageModel(tokenizer: try GPT2Tokenizer(directory: directory), config: cluster.config,
                             backend: try CoordinatorClient(cluster: cluster), fields: try ConfigFields(directory: directory))
    }

    /// A model from stages already in memory (layer order), e.g. random weights for benchmarks;
    /// prompts are then given as token ids (`tracer.invoke(tokens:)`).
    public convenience init(stages models: [GPT2], tokenizer: GPT2Tokenizer) throws {
        let cluster = try LocalCluster(models: models)
        self.init(tokenizer: tokenizer, config: cluster.config, backend: try CoordinatorClient(cluster: cluster))
    }

    /// A client of a running coordinator (`nnsight serve`, or the one `nnsight run --workers N`
    /// starts). The directory provides the config and tokenizer; the weights live on the workers.
    /// It checks that a coordinator answers first: nothing there within `livenessSeconds` is an
    /// error, as is a coordinator that stops answering for that long while a trace runs.
    /// `keys` (`--keys DIR`): this client's CURVE keypair and the coordinator's public key, for a
    /// coordinator that requires them.
    public static func connect(_ endpoint: String, model directory: String, timeoutSeconds: Int = 300,
                               livenessSeconds: Int = 5, keys: KeyDirectory? = nil) throws -> LanguageModel {
        let config = try GPT2Config.load(directory: directory)
        let client = try CoordinatorClient(endpoint: endpoint, modelId: config.architectureId, timeoutSeconds: timeoutSeconds,
                                           livenessMs: livenessSeconds * 1000, keys: keys)
        try client.ping()
        return LanguageModel(tokenizer: try GPT2Tokenizer(directory: directory), config: config, backend: client,
                             fields: try ConfigFields(directory: directory))
    }

    /// Asks the coordinator at `endpoint` what the cluster is doing (`nnsight status`): the
    /// stages and their layers, each worker's address, threads, last heartbeat and traces, the queue.
    ///
    /// ```swift
    /// let status = try LanguageModel.status(of: "tcp://127.0.0.1:5555")
    /// for w in status.workers { print(w.id, w.layerStart..<w.layerEnd) }
    /// ```
    public static func status(of endpoint: String, timeoutSeconds: Int = 10, keys: KeyDirectory? = nil) throws -> Nnsight_V1_ClusterStatus {
        try CoordinatorClient(endpoint: endpoint, modelId: "", timeoutSeconds: timeoutSeconds, livenessMs: 5000, keys: keys).status()
    }

    init(tokenizer: GPT2Tokenizer, config: GPT2Config, backend: TraceBackend, fields: ConfigFields = ConfigFields()) {
        self.tokenizer = tokenizer
        self.config = config
        self.configFields = fields
        self.backend = backend
        transformer = TransformerEnvoy(layers: config.nLayer)
        lmHead = ModuleEnvoy(.lmHead, layers: config.nLayer)
        generator = GeneratorEnvoy(layers: config.nLayer)
    }

    /// Multi-token generation. With a prompt, the closure runs inside its invoke; without one,
    /// call `tracer.invoke(prompt) { ... }` for each prompt of the batch. Generation stops after
    /// `maxNewTokens` steps or when every row has produced `eosTokenId` (the model's by default).
    /// `padTokenId`: what finished rows produce and prompts are padded with (the tokenizer's
    /// end-of-text by default).
    public func generate(_ prompt: String? = nil, maxNewTokens: Int, sampling: SamplingParameters = SamplingParameters(),
                         eosTokenId: Int? = nil, padTokenId: Int? = nil, _ body: (Tracer) throws -> Void) throws {
        try run(prompt, maxNewTokens: maxNewTokens, sampling: sampling, eos: eosTokenId ?? config.eosTokenId,
                pad: padTokenId ?? tokenizer.endOfTextId, body)
    }

    /// One forward pass (`model.trace`): step 0 only.
    public func trace(_ prompt: String? = nil, _ body: (Tracer) throws -> Void) throws {
        try run(prompt, maxNewTokens: 1, sampling: SamplingParameters(), eos: config.eosTokenId, pad: tokenizer.endOfTextId,
                allPositionLogits: true, body)
    }

    /// nnsight's `model.scan`: the block is recorded and checked (paths, shapes) as a trace's,
    /// and the model does not run; every value's `.shape` is known while recording.
    public func scan(_ prompt: String? = nil, _ body: (Tracer) throws -> Void) throws {
        try run(prompt, maxNewTokens: 1, sampling: SamplingParameters(), eos: config.eosTokenId, pad: tokenizer.endOfTextId,
                allPositionLogits: true, execute: false, body)
    }

    private func run(_ prompt: String?, maxNewTokens: Int, sampling: SamplingParameters, eos: Int?, pad: Int,
                     allPositionLogits: Bool = false, execute: Bool = true, _ body: (Tracer) throws -> Void) throws {
        let recorder = TraceRecorder(config: config, maxNewTokens: maxNewTokens, allPositionLogits: allPositionLogits)
        if let recording { recorder.session = (recording, recording.traces.count) }
        let tracer = Tracer(recorder: recorder, tokenize: tokenizer.encode)
        TraceRecorder.active = recorder
        defer { TraceRecorder.active = nil }
        do {
            if let prompt {
                try tracer.invoke(prompt) { try body(tracer) }
            } else {
                try body(tracer)
            }
        } catch is Tracer.Stop {}
        TraceRecorder.active = nil
        if let first = recorder.problems.first { throw first }
        if let assumed = recorder.shapesAssumedLength, assumed.length != recorder.promptLength {
            throw TraceError(.invalidGraph, "a shape read here assumed prompts of \(assumed.length) tokens, but a later invoke makes the batch \(recorder.promptLength) tokens long: read shapes after the last invoke",
                             line: assumed.line > 0 ? assumed.line : nil, column: assumed.column > 0 ? assumed.column : nil)
        }
        guard execute else { return }
        let generation = GenerationSpec(maxNewTokens: recorder.stopStep.map { min($0 + 1, maxNewTokens) } ?? maxNewTokens,
                                        sampling: sampling, eosTokenId: eos, padTokenId: pad, stopped: recorder.stopStep != nil,
                                        allPositionLogits: allPositionLogits)
        if let recording {
            // Its graph is made when the session runs: a later trace may still add saves to it.
            recording.traces.append((generation, recorder))
            return
        }
        try backend.execute(Self.graph(recorder, generation)) { event in deliver(event, to: recorder) }
    }

    /// The graph a recorder holds. Steps after tracer.stop() never run: what was recorded for
    /// them (a cache's later steps) and what depends on it goes; its saves stay "not reached".
    private static func graph(_ recorder: TraceRecorder, _ generation: GenerationSpec) -> TraceGraph {
        var nodes = recorder.nodes
        if let stop = recorder.stopStep {
            var dropped = Set<UInt32>()
            nodes = nodes.filter { node in
                guard node.step > stop || node.dependencies.contains(where: dropped.contains) else { return true }
                dropped.insert(node.id)
                return false
            }
        }
        return TraceGraph(nodes: nodes, invokes: recorder.invokes, invokeSizes: recorder.invokeSizes, generation: generation)
    }

    private func deliver(_ event: TraceEvent, to recorder: TraceRecorder) {
        // A client-side tracer.stop(): what comes after it was never reached.
        switch event {
        case let .saved(id, step, _), let .skipped(id, step):
            if recorder.isAfterClientStop(id: id, step: step) { return }
        case let .tokens(step, _):
            if let stop = recorder.clientStop, step > stop.step { return }
        }
        switch event {
        case let .saved(id, _, value):
            if let saved = recorder.saves[id] { saved.result = .success(value) }
            if let (list, slot) = recorder.appends[id] { list.values[slot] = value }
        case let .skipped(id, _):
            recorder.saves[id]?.skipped = true
        case .tokens:
            break
        }
        onEvent?(event)
    }

    /// nnsight's `model.session()`: the traces and generations recorded in `body` run as one
    /// submission when it ends, back to back; a value saved in one is used by later ones on the
    /// coordinator (no round trip to the client). Saved values exist after `body` returns.
    ///
    /// ```swift
    /// var steer: Saved!, ids: Saved!
    /// try model.session {
    ///     try model.trace("Hello world") { _ in steer = model.transformer.h[1].output[0][0, -1].save() }
    ///     try model.generate("The Eiffel Tower is in", maxNewTokens: 3) { tracer in
    ///         for _ in tracer.iter[...] { model.transformer.h[1].output[0][.all, -1] += TraceValue.saved(steer) }
    ///         ids = model.generator.output.save()
    ///     }
    /// }
    /// ```
    public func session(_ body: () throws -> Void) throws {
        guard recording == nil else { throw TraceError(.invalidGraph, "sessions do not nest") }
        recording = SessionRecording()
        defer { recording = nil }
        try body()
        let session = recording!
        recording = nil
        try execute(session)
    }

    /// Inside `session { }`: runs the traces recorded so far now (one submission), first saving
    /// `values` of theirs that the caller goes on using (a script computing between the traces
    /// on what they produced); the session's later traces are recorded anew and read those values
    /// as constants. Saved values of the traces that ran exist when this returns.
    public func flushSession(keeping values: [TraceValue]) throws {
        guard let session = recording else { return }
        for value in values where value.saved == nil { value.saveInOwnTrace(session) }
        recording = SessionRecording()
        try execute(session)
    }

    private func execute(_ session: SessionRecording) throws {
        defer {
            session.hasRun = true
            session.traces.removeAll()  // the recorders point back at the session
        }
        guard !session.traces.isEmpty else { return }
        let recorders = session.traces.map(\.recorder)
        try backend.executeSession(session.traces.map { Self.graph($0.recorder, $0.generation) }) { index, event in
            guard index < recorders.count else { return }
            deliver(event, to: recorders[index])
        }
    }
}

/// What streams back while a trace runs.
public enum TraceEvent: Sendable {
    /// A saved or appended value: its node id (the save's handle), step and value.
    case saved(id: UInt32, step: Int, value: Tensor)
    /// The token each batch row produced at a step.
    case tokens(step: Int, ids: [Int])
    /// A save or append in a guarded branch that did not run at that step: it has no value.
    case skipped(id: UInt32, step: Int)
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

