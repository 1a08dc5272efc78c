import Engine
import Foundation
import Wire
import Worker

/// What one generation produced, besides the values streamed to saves.
public struct RunOutcome: Sendable {
    public var sequences: [[Int]]
    public var steps: Int
    /// The model's inputs at each step: tokens, position ids, attention mask (all rows).
    public var inputs: [StepInputs]

    public struct StepInputs: Sendable {
        public var tokens: [[Int]]
        public var positions: [[Int]]
        public var mask: [[Int]]
    }
}

/// One trace's generation loop as a state machine: what to send each stage, what a step result
/// changes, when it is done. A coordinator drives many at once; `TraceRunner` drives one.
final class TraceSession {
    let id: UInt64
    let compiled: CompiledTrace
    let generation: Nnsight_V1_GenerationParameters
    private let batch: Int
    private(set) var sequences: [[Int]]
    private var nextPosition: [Int]
    private var finished: [Bool]
    private var current: RunOutcome.StepInputs
    private var carried: [Nnsight_V1_CrossValue] = []
    private(set) var history: [RunOutcome.StepInputs] = []
    private(set) var steps = 0
    /// Saves the workers stream for the steps that ran, and how many arrived.
    private let saveSteps: [Int]
    var received = 0

    init(id: UInt64, compiled: CompiledTrace, prompts: [[Int]], generation: Nnsight_V1_GenerationParameters) {
        self.id = id
        self.compiled = compiled
        self.generation = generation
        let padded = PaddedBatch(prompts: prompts, padTokenId: Int(generation.padTokenID))
        batch = padded.batch
        sequences = padded.tokens
        nextPosition = padded.positions.map { ($0.last ?? -1) + 1 }
        finished = [Bool](repeating: false, count: padded.batch)
        current = RunOutcome.StepInputs(tokens: padded.tokens, positions: padded.positions, mask: padded.mask)
        saveSteps = compiled.fragments.flatMap(\.nodes).compactMap { node in
            switch node.kind {
            case .save?, .append?: Int(node.steps.first ?? 0)
            default: nil
            }
        }
    }

    /// Each stage's fragment.
    var submits: [Envelope] {
        compiled.fragments.map { fragment in Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = fragment } } }
    }

    /// Tells every stage to free the trace's state.
    var release: Envelope { Framing.envelope(requestId: id) { $0.finished = .with { $0.steps = UInt32(steps) } } }

    /// Records the current step's inputs as sent, when the last stage (in a ring) sent them.
    func recordStepStartedByLastStage() {
        history.append(current)
    }

    /// Stage 0's input for the current step.
    func activations() -> Envelope {
        history.append(current)
        let (B, T) = (batch, current.tokens[0].count)
        func tensor(_ rows: [[Int]]) -> Nnsight_V1_Tensor { HostTensor(shape: [B, T], ints: rows.joined().map(Int64.init)).wire }
        let (step, inputs, values) = (steps, current, carried)
        return Framing.envelope(requestId: id) {
            $0.activations = .with {
                $0.step = UInt32(step)
                $0.tokens = tensor(inputs.tokens)
                $0.positions = tensor(inputs.positions)
                $0.mask = tensor(inputs.mask)
                $0.values = values
            }
        }
    }

    /// Takes the last stage's tokens (one per row); returns whether generation goes on.
    func accept(_ result: Nnsight_V1_StepResult) throws(TraceError) -> Bool {
        guard result.nextTokens.count == batch else {
            throw .runtime("the last stage sent \(result.nextTokens.count) tokens for step \(result.step), the batch has \(batch) rows")
        }
        carried = result.values
        for b in 0..<batch {
            let token = Int(result.nextTokens[b])
            sequences[b].append(token)
            if generation.hasEosTokenID && token == Int(generation.eosTokenID) { finished[b] = true }
        }
        steps += 1
        guard generation.continues(after: steps - 1, finished: finished) else { return false }
        current = RunOutcome.StepInputs(tokens: result.nextTokens.map { [Int($0)] }, positions: nextPosition.map { [$0] },
                                        mask: [[Int]](repeating: [1], count: batch))
        for b in 0..<batch { nextPosition[b] += 1 }
        return true
    }

    /// Whether every value the workers stream for the steps that ran has arrived.
    var allSavesArrived: Bool { received >= saveSteps.filter { $0 < steps }.count }

    var outcome: RunOutcome { RunOutcome(sequences: sequences, steps: steps, inputs: history) }
}
