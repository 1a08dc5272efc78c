import Engine
import Foundation
import Wire
import Worker

/// What one generation produced, besides the values streamed to saves.
struct RunOutcome {
    var sequences: [[Int]]
    var steps: Int
    /// The model's inputs at each step: tokens, position ids, attention mask (all rows).
    var inputs: [(tokens: [[Int]], positions: [[Int]], mask: [[Int]])]
}

/// Drives one trace through the pipeline: ships each stage its fragment, feeds stage 0 step by
/// step, collects saves as they stream in and the tokens each step produced.
final class TraceRunner {
    let pushes: [ZMQSocket]
    let results: ZMQSocket
    var stepTimeoutMs = 120_000
    private var nextRequest: UInt64 = 1

    init(context: ZMQContext, stageEndpoints: [String], coordinatorEndpoint: String) throws {
        results = try context.socket(.pull)
        try results.bind(coordinatorEndpoint)
        pushes = try stageEndpoints.map { endpoint in
            let socket = try context.socket(.push)
            try socket.connect(endpoint)
            return socket
        }
    }

    /// Runs the trace. `expectedSaves(n)` is how many values the workers stream for the first n
    /// steps: the run returns only when all of them have arrived (they travel on other pipes than
    /// the step results, so they may arrive later).
    func run(_ compiled: CompiledTrace, prompts: [[Int]], generation: Nnsight_V1_GenerationParameters,
             expectedSaves: (Int) -> Int, onSaved: (Nnsight_V1_SavedValue) -> Void) throws(TraceError) -> RunOutcome {
        var received = 0
        let onSaved = { (value: Nnsight_V1_SavedValue) in
            received += 1
            onSaved(value)
        }
        let id = nextRequest
        nextRequest += 1
        func send(_ socket: ZMQSocket, _ fill: (inout Envelope) -> Void) throws(TraceError) {
            do { try socket.send(try Framing.encode(Framing.envelope(requestId: id, fill))) }
            catch { throw .transport("\(error)") }
        }
        defer { for push in pushes { try? send(push) { $0.finished = .with { $0.steps = 0 } } } }
        for (s, fragment) in compiled.fragments.enumerated() {
            try send(pushes[s]) { $0.submit = .with { $0.graph = fragment } }
        }
        let padded = PaddedBatch(prompts: prompts, padTokenId: Int(generation.padTokenID))
        let B = padded.batch
        var sequences = padded.tokens
        var nextPosition = padded.positions.map { ($0.last ?? -1) + 1 }
        var finished = [Bool](repeating: false, count: B)
        var tokens = padded.tokens, positions = padded.positions, mask = padded.mask
        var carried: [Nnsight_V1_CrossValue] = []
        var history: [(tokens: [[Int]], positions: [[Int]], mask: [[Int]])] = []
        var steps = 0
        while steps < Int(generation.maxNewTokens) {
            history.append((tokens, positions, mask))
            let T = tokens[0].count
            func tensor(_ rows: [[Int]]) -> Nnsight_V1_Tensor { HostTensor(shape: [B, T], ints: rows.joined().map(Int64.init)).wire }
            try send(pushes[0]) {
                $0.activations = .with {
                    $0.step = UInt32(steps)
                    $0.tokens = tensor(tokens)
                    $0.positions = tensor(positions)
                    $0.mask = tensor(mask)
                    $0.values = carried
                }
            }
            guard let result = try awaitStep(id: id, step: steps, onSaved: onSaved) else { break }
            carried = result.values
            for b in 0..<B {
                let token = Int(result.nextTokens[b])
                sequences[b].append(token)
                if generation.hasEosTokenID && token == Int(generation.eosTokenID) { finished[b] = true }
            }
            steps += 1
            if generation.hasEosTokenID && finished.allSatisfy({ $0 }) { break }
            tokens = result.nextTokens.map { [Int($0)] }
            positions = nextPosition.map { [$0] }
            mask = [[Int]](repeating: [1], count: B)
            for b in 0..<B { nextPosition[b] += 1 }
        }
        let expected = expectedSaves(steps)
        let deadline = Date().addingTimeInterval(Double(stepTimeoutMs) / 1000)
        while received < expected {
            guard Date() < deadline else { throw .transport("\(expected - received) saved values did not arrive") }
            _ = try awaitStep(id: id, step: -1, onSaved: onSaved, timeoutMs: 100)
        }
        return RunOutcome(sequences: sequences, steps: steps, inputs: history)
    }

    /// Receives until step `step`'s result arrives (nil after `timeoutMs` when given), passing saves on.
    @discardableResult
    private func awaitStep(id: UInt64, step: Int, onSaved: (Nnsight_V1_SavedValue) -> Void,
                           timeoutMs: Int? = nil) throws(TraceError) -> Nnsight_V1_StepResult? {
        let deadline = Date().addingTimeInterval(Double(timeoutMs ?? stepTimeoutMs) / 1000)
        while Date() < deadline {
            let frames: [Data]?
            do { frames = try results.receive(timeoutMs: 100) } catch { throw .transport("\(error)") }
            guard let frame = frames?.last else { continue }
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frame) } catch { throw .transport("a stage sent an invalid message: \(error)") }
            guard envelope.requestID == id else { continue }  // a stale message of an earlier trace
            switch envelope.body {
            case let .saved(saved)?: onSaved(saved)
            case let .stepResult(result)? where Int(result.step) == step: return result
            case let .error(error)?: throw .runtime(error.message)
            default: continue
            }
        }
        if timeoutMs != nil { return nil }
        throw .transport("no stage answered step \(step) within \(stepTimeoutMs / 1000) s")
    }
}
