import Coordinator
import Foundation
import Graph
import Synchronization
import Testing

/// A bounded soak under faults, in the spirit of Jepsen: concurrent clients run random traces
/// (saves over steps, many appends, guards, edits, sessions) on `nnsight serve` and two
/// `nnsight-worker` processes while workers are killed and restarted under the same id, workers
/// and the coordinator are paused, and the coordinator is killed and restarted on its port.
/// Every trace either finishes with exactly the values of its undisturbed run (computed in
/// process first) or fails with an error; no value is lost or wrong, and the cluster serves
/// at the end. `NNSIGHT_SOAK_SECONDS` sets the faulty period (default 60; CI's whole test run
/// stays within its budget).
@Suite(.serialized) struct SoakTests {
    /// One random trace: what it records, and the values it saved (tokens and tensors, flattened).
    struct Workload: Sendable, CustomStringConvertible {
        enum Kind: CaseIterable { case saves, appends, guarded, edit, session }
        let kind: Kind
        let layer: Int
        let steps: Int
        let threshold: Double

        var description: String { "\(kind)(layer \(layer), steps \(steps), threshold \(threshold))" }

        static func random(_ rng: inout SystemRandomNumberGenerator) -> Workload {
            let kind = Kind.allCases.randomElement(using: &rng)!
            return Workload(kind: kind, layer: Int.random(in: 0..<4, using: &rng), steps: Int.random(in: 1...4, using: &rng),
                            threshold: kind == .guarded ? [-1e9, 1e9].randomElement(using: &rng)! : -1e9)
        }

        /// Runs on `model`; returns every saved value as floats, in a fixed order.
        func run(_ model: LanguageModel) throws -> [[Float]] {
            var saved: [Saved] = []
            switch kind {
            case .saves:
                try model.generate(Oracle.p1, maxNewTokens: steps) { tracer in
                    for _ in tracer.all() { saved.append(model.transformer.h[layer].output[0][0, -1].save()) }
                    saved.append(model.generator.output.save())
                }
            case .appends:
                try model.generate(Oracle.p1, maxNewTokens: 1) { _ in
                    for i in 0..<300 { saved.append(model.transformer.h[layer].mlp.output[0, -1, .at(i % 64)].save()) }
                }
            case .guarded:
                try model.generate(Oracle.p1, maxNewTokens: steps + 1) { tracer in
                    let condition = TraceValue.apply("gt", [model.lmHead.output[0, -1].max(), .constant(threshold)])
                    tracer.next()
                    try tracer.when(condition) { model.transformer.h[layer].output[0][.all] = 0 }
                    saved.append(model.generator.output.save())
                }
            case .edit:
                try model.generate(Oracle.p1, maxNewTokens: steps) { tracer in
                    for _ in tracer.iter[0..<steps] {
                        let h = model.transformer.h[layer].output[0]
                        h[.all, -1] = h[.all, -1] * 0.5
                    }
                    saved.append(model.lmHead.output[0, -1].save())
                    saved.append(model.generator.output.save())
                }
            case .session:
                var steer: Saved!, steered: Saved!
                try model.session {
                    try model.trace("Hello world") { _ in steer = model.transformer.h[layer].output[0][0, -1].save() }
                    try model.generate(Oracle.p1, maxNewTokens: steps) { tracer in
                        for _ in tracer.all() {
                            let h = model.transformer.h[layer].output[0]
                            h[.all, -1] = h[.all, -1] + TraceValue.saved(steer)
                        }
                        steered = model.generator.output.save()
                    }
                }
                saved = [steer, steered]
            }
            return try saved.map { s in
                let t = try s.value
                return t.dtype == .float32 ? t.floats : t.ints.map(Float.init)
            }
        }
    }

    final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var finished = 0, failed = 0, values = 0, wrong: [String] = [], errors: [String: Int] = [:], messages: Set<String> = []
    }

    @Test func tracesUnderKillsAndPausesFinishExactlyOrFailClearly() throws {
        let seconds = Double(ProcessInfo.processInfo.environment["NNSIGHT_SOAK_SECONDS"] ?? "") ?? 60
        // The undisturbed values, one in-process run per distinct workload.
        let local = try LanguageModel.load(Oracle.model, stages: 1)
        var expected: [String: [[Float]]] = [:]
        for kind in Workload.Kind.allCases {
            for layer in 0..<4 {
                for steps in 1...4 {
                    for threshold in [-1e9, 1e9] where kind == .guarded || threshold < 0 {
                        let w = Workload(kind: kind, layer: layer, steps: steps, threshold: threshold)
                        expected[w.description] = try w.run(local)
                    }
                }
            }
        }
        let expectedValues = expected

        let (first, endpoint) = try LivenessTests.coordinator(workers: 2, workerTimeout: 3)
        var coordinator = first
        let processes = Mutex<(coordinator: ChildProcess, workers: [ChildProcess])>((coordinator, []))
        processes.withLock { $0.workers = (try? (0..<2).map { try LivenessTests.worker(endpoint, id: "w\($0)", coordinatorTimeout: 10) }) ?? [] }
        defer { processes.withLock { p in p.workers.forEach { $0.stop() }; p.coordinator.stop() } }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)

        let tally = Tally()
        let stop = Atomic<Bool>(false)
        let clients = DispatchGroup()
        for _ in 0..<3 {
            DispatchQueue.global().async(group: clients) {
                var rng = SystemRandomNumberGenerator()
                while !stop.load(ordering: .relaxed) {
                    let w = Workload.random(&rng)
                    do {
                        let model = try LanguageModel.connect(endpoint, model: Oracle.model, timeoutSeconds: 60)
                        let values = try w.run(model)
                        let want = expectedValues[w.description]!
                        let same = values.count == want.count && zip(values, want).allSatisfy { a, b in
                            a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 1e-4 }
                        }
                        tally.lock.withLock {
                            tally.finished += 1
                            tally.values += values.reduce(0) { $0 + $1.count }
                            if !same { tally.wrong.append(w.description) }
                        }
                    } catch let error as TraceError {
                        // A clear error: a kind and a message (which worker, what was refused).
                        tally.lock.withLock {
                            tally.failed += 1
                            tally.errors[error.kind.rawValue, default: 0] += 1
                            // (the message without the numbers that vary: ports, steps, seconds)
                            tally.messages.insert(error.message.replacingOccurrences(of: #"[0-9]+"#, with: "N", options: .regularExpression))
                            if error.message.isEmpty { tally.wrong.append("\(w): an error without a message") }
                        }
                        Thread.sleep(forTimeInterval: 0.2)
                    } catch {
                        tally.lock.withLock { tally.wrong.append("\(w): an untyped error \(error)") }
                    }
                }
            }
        }

        // Faults, one every 2-4 s: what operators and machines do to a cluster.
        var rng = SystemRandomNumberGenerator()
        var faults: [String: Int] = [:]
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            Thread.sleep(forTimeInterval: Double.random(in: 2...4, using: &rng))
            let fault = ["kill worker", "pause worker", "pause coordinator", "restart coordinator"].randomElement(using: &rng)!
            faults[fault, default: 0] += 1
            let i = Int.random(in: 0..<2, using: &rng)
            switch fault {
            case "kill worker":
                // systemd's Restart=on-failure: the same id again a moment later.
                let old = processes.withLock { $0.workers[i] }
                old.stop()
                Thread.sleep(forTimeInterval: Double.random(in: 0.2...1.5, using: &rng))
                let fresh = try LivenessTests.worker(endpoint, id: "w\(i)", coordinatorTimeout: 10)
                processes.withLock { $0.workers[i] = fresh }
            case "pause worker":
                let w = processes.withLock { $0.workers[i] }
                w.signal(SIGSTOP)
                Thread.sleep(forTimeInterval: Double.random(in: 1...6, using: &rng))
                w.signal(SIGCONT)
            case "pause coordinator":
                coordinator.signal(SIGSTOP)
                Thread.sleep(forTimeInterval: Double.random(in: 1...12, using: &rng))
                coordinator.signal(SIGCONT)
            default:
                coordinator.stop()
                (coordinator, _) = try LivenessTests.coordinator(workers: 2, listen: endpoint, workerTimeout: 3)
                let c = coordinator
                processes.withLock { $0.coordinator = c }
            }
        }
        stop.store(true, ordering: .relaxed)
        clients.wait()

        // Serving at the end.
        #expect(try LivenessTests.generate(endpoint, within: 60) == LivenessTests.expected)
        let workersAlive = processes.withLock { $0.workers.allSatisfy { $0.process.isRunning } }
        #expect(workersAlive)
        tally.lock.withLock {
            print("soak: \(tally.finished + tally.failed) traces (\(tally.finished) finished exactly, \(tally.failed) failed with an error \(tally.errors)), "
                  + "\(faults.values.reduce(0, +)) faults \(faults), \(tally.values) values checked, \(tally.wrong.count) lost or wrong")
            print("soak errors: \(tally.messages.sorted().joined(separator: " | "))")
            #expect(tally.wrong.isEmpty, "\(tally.wrong)")
            #expect(tally.finished > 0)
        }
    }
}
