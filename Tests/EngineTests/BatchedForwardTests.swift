import Engine
import Foundation
import Testing

/// `GPT2.forward(batch:)`: several requests' steps in one pass (their rows stacked for the
/// matmuls, each with its own KV cache, positions, mask and hooks) give what separate passes
/// give. The start of continuous batching (issue 14).
struct BatchedForwardTests {
    static let config = try! GPT2Config.load(directory: Fixtures.tinyModel)
    static let model = GPT2(weights: try! GPT2Weights.load(directory: Fixtures.tinyModel, config: config))

    /// A request: its batch and the steps it runs, greedy.
    struct Request {
        let batch: PaddedBatch
        let state: InferenceState
        var step: StepInput
        init(_ prompts: [[Int]]) {
            batch = PaddedBatch(prompts: prompts, padTokenId: 1999)
            state = InferenceState(config: BatchedForwardTests.config, layers: BatchedForwardTests.config.nLayer, batch: prompts.count,
                                   capacity: batch.length + 8)
            step = batch.firstStep
        }
        mutating func advance(_ logits: StageOutput) {
            let V = logits.shape[2], rowLength = logits.shape[1] * V
            let tokens = logits.withValues { v in
                (0..<step.batch).map { b in Sampler.argmax(UnsafeBufferPointer(rebasing: v[(b * rowLength + rowLength - V)..<((b + 1) * rowLength)])) }
            }
            step = .decode(tokens: tokens, after: step.lastPositions)
        }
    }

    /// Adds 1 to one request's block-1 output: only its own rows.
    final class Bump: HookHandler {
        var seen: [[Int]] = []
        func wants(_ p: HookPoint) -> Bool { p == HookPoint(.block(1), .output) }
        func visit(_ p: HookPoint, _ v: HookValue) throws {
            seen.append(v.shape)
            if case let .floats(b, _) = v { for i in b.indices { b[i] += 1 } }
        }
    }

    /// Three requests at different steps (one decoding its 4th token, one a padded batch of two
    /// decoding, one a fresh prefill) share passes; each request's logits equal its solo run's,
    /// and a hook on one request edits only its rows.
    @Test func stackedRequestsMatchTheirSoloRuns() throws {
        let prompts: [[[Int]]] = [[[748, 638, 1727, 605]], [[5, 6, 7, 8, 9], [10, 11]], [[42, 43, 44, 45, 46, 47, 48]]]
        let joinsAt = [0, 1, 3]  // the pass each request starts at
        let passes = 6
        func run(stacked: Bool) throws -> [[[Float]]] {
            var requests = prompts.map(Request.init)
            let bump = Bump()
            var logits = [[[Float]]](repeating: [], count: prompts.count)
            let shared = BatchWorkspace()
            for pass in 0..<passes {
                let active = requests.indices.filter { pass >= joinsAt[$0] }
                let entries = active.map { i in BatchEntry(requests[i].step, state: requests[i].state, hooks: i == 1 ? bump : nil) }
                let outputs = stacked ? try Self.model.forward(batch: entries, workspace: shared)
                    : try entries.map { try Self.model.forward($0.step, state: $0.state, hooks: $0.hooks) }
                for (i, out) in zip(active, outputs) {
                    logits[i].append(out.array)
                    requests[i].advance(out)
                }
            }
            // The hook saw request 1's rows only: [2, T, 64] each time.
            #expect(bump.seen.allSatisfy { $0[0] == 2 && $0[2] == 64 } && bump.seen.count == passes - 1)
            return logits
        }
        let solo = try run(stacked: false), stacked = try run(stacked: true)
        for i in prompts.indices {
            #expect(solo[i].count == stacked[i].count)
            for (a, b) in zip(solo[i], stacked[i]) {
                #expect(a.count == b.count)
                let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
                #expect(worst < 1e-4, "request \(i): logits differ by \(worst)")
            }
        }
    }

    /// Skips one request's block 1 and another's attn in layer 2 (their outputs given by the
    /// handler) while a third runs everything, in shared passes: each matches its solo run.
    @Test func skipsApplyPerRequest() throws {
        final class Skipper: HookHandler {
            let module: ModuleID
            init(_ module: ModuleID) { self.module = module }
            func wants(_ p: HookPoint) -> Bool { p.module == module }
            func skips(_ m: ModuleID) -> Bool { m == module }
            func visit(_ p: HookPoint, _ v: HookValue) throws {
                if p.port == .output, case let .floats(b, _) = v { for i in b.indices { b[i] = 0.25 } }
            }
        }
        let prompts: [[[Int]]] = [[[748, 638, 1727]], [[5, 6, 7, 8]], [[42, 43]]]
        let handlers: [HookHandler?] = [Skipper(.block(1)), Skipper(.attn(2)), nil]
        func run(stacked: Bool) throws -> [[Float]] {
            var requests = prompts.map(Request.init)
            var last = [[Float]](repeating: [], count: prompts.count)
            let shared = BatchWorkspace()
            for _ in 0..<4 {
                let entries = requests.indices.map { BatchEntry(requests[$0].step, state: requests[$0].state, hooks: handlers[$0]) }
                let outputs = stacked ? try Self.model.forward(batch: entries, workspace: shared)
                    : try entries.map { try Self.model.forward($0.step, state: $0.state, hooks: $0.hooks) }
                for (i, out) in outputs.enumerated() {
                    last[i] = out.array
                    requests[i].advance(out)
                }
            }
            return last
        }
        let solo = try run(stacked: false), stacked = try run(stacked: true)
        for i in prompts.indices {
            let worst = zip(solo[i], stacked[i]).map { abs($0 - $1) }.max() ?? 1
            #expect(solo[i].count == stacked[i].count && worst < 1e-4, "request \(i): logits differ by \(worst)")
        }
    }
}
