import Engine
import Foundation
import Wire
import Worker

/// Drives one trace at a time through in-process stages: ships each stage its fragment, feeds
/// stage 0 step by step, collects saves as they stream in and the tokens each step produced.
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

    func run(_ compiled: CompiledTrace, prompts: [[Int]], generation: Nnsight_V1_GenerationParameters,
             onTokens: (Int, [Int]) -> Void = { _, _ in }, onSaved: (Nnsight_V1_SavedValue) -> Void) throws(TraceError) -> RunOutcome {
        let session = TraceSession(id: nextRequest, compiled: compiled, prompts: prompts, generation: generation)
        nextRequest += 1
        func send(_ socket: ZMQSocket, _ envelope: Envelope) throws(TraceError) {
            do { try socket.send(try Framing.encode(envelope)) } catch { throw .transport("\(error)") }
        }
        defer { for push in pushes { try? send(push, session.release) } }
        for (stage, submit) in session.submits.enumerated() { try send(pushes[stage], submit) }
        var running = true
        while running {
            try send(pushes[0], session.activations())
            let result = try receive(session, onSaved: onSaved, until: { _ in false }, step: session.steps)
            let step = session.steps
            running = try session.accept(result!)
            onTokens(step, result!.nextTokens.map(Int.init))
        }
        // Saves travel on other pipes than step results and may arrive later.
        _ = try receive(session, onSaved: onSaved, until: { $0.allSavesArrived }, step: nil)
        return session.outcome
    }

    /// Receives until the step's result arrives (returned) or `until` holds, passing saves on.
    private func receive(_ session: TraceSession, onSaved: (Nnsight_V1_SavedValue) -> Void,
                         until: (TraceSession) -> Bool, step: Int?) throws(TraceError) -> Nnsight_V1_StepResult? {
        let deadline = Date().addingTimeInterval(Double(stepTimeoutMs) / 1000)
        while !until(session) {
            guard Date() < deadline else {
                throw .transport(step.map { "no stage answered step \($0) within \(stepTimeoutMs / 1000) s" } ?? "saved values did not arrive")
            }
            let frames: [Data]?
            do { frames = try results.receive(timeoutMs: 100) } catch { throw .transport("\(error)") }
            guard let frame = frames?.last else { continue }
            let envelope: Envelope
            do throws(WireError) { envelope = try Framing.decode(frame) } catch { throw .transport("a stage sent an invalid message: \(error)") }
            guard envelope.requestID == session.id else { continue }  // a stale message of an earlier trace
            switch envelope.body {
            case let .saved(saved)?:
                session.received += 1
                onSaved(saved)
            case let .stepResult(result)? where Int(result.step) == step: return result
            case let .error(error)?: throw .runtime(error.message)
            default: continue
            }
        }
        return nil
    }
}
