import Engine
import Foundation
import Graph
import GraphWire
import Wire

/// What one generation produced, besides the values streamed to saves.
public struct RunOutcome: Sendable {
    public var sequences: [[Int]]
    public var steps: Int
    /// The model's inputs at each step: tokens, position ids, attention mask (all rows).
    public var inputs: [StepInputs]
    /// `tracer.stop()` ended the last step: generation never finished (the generator's output
    /// does not exist, as in nnsight).
    public var stopped = false

    public struct StepInputs: Sendable {
        public var tokens: [[Int]]
        public var positions: [[Int]]
        public var mask: [[Int]]
    }
}

/// One trace's generation as a state machine on the coordinator: the fragments to send, stage
/// 0's first input, and the record of each step the ring ran (tokens, inputs, eos), until it is done.
final class TraceSession {
    let id: UInt64
    let compiled: CompiledTrace
    let generation: GenerationSpec
    private let batch: Int
    private(set) var sequences: [[Int]]
    private var finished: [Bool]
    private var current: StepInput
    private(set) var history: [RunOutcome.StepInputs] = []
    private(set) var steps = 0
    private(set) var stopped = false
    /// How many saves the workers stream for steps 0..<s, at [s]; and how many arrived.
    private let savesBefore: [Int]
    var received = 0

    private let prompts: [[Int]]

    init(id: UInt64, compiled: CompiledTrace, prompts: [[Int]], generation: GenerationSpec) {
        self.id = id
        self.compiled = compiled
        self.prompts = prompts
        self.generation = generation
        let padded = PaddedBatch(prompts: prompts, padTokenId: generation.padTokenId)
        batch = padded.batch
        sequences = padded.tokens
        finished = [Bool](repeating: false, count: padded.batch)
        current = padded.firstStep
        var perStep = [Int](repeating: 0, count: generation.maxNewTokens + 1)
        for node in compiled.fragments.flatMap(\.nodes) {
            switch node.kind {
            case .save, .append: perStep[min(max(node.step, 0), generation.maxNewTokens)] += 1
            default: break
            }
        }
        var running = 0
        savesBefore = [0] + perStep.map { running += $0; return running }
    }

    /// The same trace from its first step, under another id (a replay: the stages, and so the
    /// compiled fragments, are the same).
    func restarted(id: UInt64) -> TraceSession {
        TraceSession(id: id, compiled: compiled, prompts: prompts, generation: generation)
    }

    /// Each stage's fragment, as the frame of its Submit message: the trace's id, then the body
    /// encoded when the trace compiled (protobuf merges concatenated encodings of one message).
    var submits: [Data] {
        let header = (try? Framing.encode(Framing.envelope(requestId: id) { _ in })) ?? Data()
        return compiled.submitBodies.map { header + $0 }
    }

    /// Tells every stage to free the trace's state.
    var release: Envelope { Framing.envelope(requestId: id) { $0.finished = .with { $0.steps = UInt32(steps) } } }

    /// Stage 0's input for the prompt pass; later steps start at the last stage (a ring).
    func firstActivations() -> Envelope {
        var input = Nnsight_V1_StepActivations(step: 0, input: current)
        input.sentUnixNs = WireProtocol.unixNanoseconds()
        return Framing.envelope(requestId: id) { $0.activations = input }
    }

    /// Takes the last stage's result of the current step: one token per row and which rows have
    /// produced eos (the sampler's word, not decided again here). Returns whether generation goes on.
    func accept(_ result: Nnsight_V1_StepResult) throws(TraceError) -> Bool {
        if result.stopped {
            // tracer.stop() ended this step's forward pass: its inputs were seen, no token came.
            recordInputs()
            steps += 1
            stopped = true
            return false
        }
        guard result.nextTokens.count == batch, result.finished.count == batch else {
            let counts = result.nextTokens.count == batch ? "\(result.finished.count) eos flags" : "\(result.nextTokens.count) tokens"
            throw TraceError(.transport, "the last stage sent \(counts) for step \(result.step), the batch has \(batch) rows",
                             step: Int(result.step))
        }
        recordInputs()
        let tokens = result.nextTokens.map { Int(truncatingIfNeeded: $0) }
        for b in 0..<batch { sequences[b].append(tokens[b]) }
        finished = result.finished
        steps += 1
        guard generation.continues(after: steps - 1, finished: finished) else { return false }
        current = .decode(tokens: tokens, after: current.lastPositions)
        return true
    }

    /// Keeps what the model was given at the current step (`transformer.inputs`).
    private func recordInputs() {
        let (B, T) = (current.batch, current.length)
        func rows(_ values: [Int]) -> [[Int]] { (0..<B).map { Array(values[($0 * T)..<($0 * T + T)]) } }
        history.append(RunOutcome.StepInputs(tokens: rows(current.tokens.map(Int.init)), positions: rows(current.positions.map(Int.init)),
                                             mask: rows(current.mask.map(Int.init))))
    }

    /// Whether every value the workers stream for the steps that ran has arrived.
    var allSavesArrived: Bool { received >= savesBefore[min(steps, savesBefore.count - 1)] }

    var outcome: RunOutcome { RunOutcome(sequences: sequences, steps: steps, inputs: history, stopped: stopped) }
}
