import Coordinator
import Foundation
import Script
import Testing

/// Issue 14's exactness: every oracle case, run alone and then concurrently with 7 other cases
/// (different prompts, lengths, interventions, max_new_tokens) on the same cluster of 1, 2 and
/// 3 worker processes, gives the same stdout, identical ids and tensors within 1e-4 of its
/// solo run. (The Engine computes each row the same way whatever it is batched with, so in
/// practice they are bit-identical.)
@Suite(.serialized) struct ConcurrentExactnessTests {
    /// Every case with the model it runs on.
    static let cases: [(script: String, model: String)] =
        ScriptGoldenTests.cases.map { (Goldens.fixtures + "/oracle/" + $0 + ".py", Goldens.fixtures + "/models/tiny-gpt2") }
        + TracedGoldenTests.cases.map { path in
            (Goldens.fixtures + "/" + path + ".py", TracedGoldenTests.model(for: String(path.split(separator: "/").last ?? "")))
        }

    static func run(_ script: String, model: String, on endpoint: String) throws -> [String: Any] {
        let client = try LanguageModel.connect(endpoint, model: model)
        let outcome = ScriptRunner(model: client, file: script).run(source: try String(contentsOfFile: script, encoding: .utf8))
        return try #require(try JSONSerialization.jsonObject(with: Data(outcome.json.utf8)) as? [String: Any])
    }

    @Test func thereAreCasesOnEveryModel() {
        #expect(Self.cases.count >= 60)
        #expect(Set(Self.cases.map(\.model)).count == 3)
    }

    @Test(arguments: [1, 2, 3])
    func everyCaseAloneAndAmongSevenOthers(workers: Int) throws {
        for model in Set(Self.cases.map(\.model)).sorted() {
            let scripts = Self.cases.filter { $0.model == model }.map(\.script)
            // Debug builds under the parallel suite: a pass of 8 traces on the 50257-token head can
            // outlast the default 3 s without a heartbeat (workers beat between passes).
            let cluster = try ProcessCluster(model: model, workers: workers, workerExecutable: ClusterScriptTests.workerExecutable,
                                             threadsPerWorker: 1, workerTimeoutMs: 30_000)
            defer { cluster.stop() }
            let solo = try scripts.map { try Self.run($0, model: model, on: cluster.endpoint) }
            // Waves of 8 at once; a model with fewer cases fills its waves by going round again.
            let waves = (scripts.count + 7) / 8
            for wave in 0..<waves {
                let members = (0..<8).map { (wave * 8 + $0) % scripts.count }
                final class Box: @unchecked Sendable {
                    let lock = NSLock()
                    var results: [Int: Result<[String: Any], Error>] = [:]
                }
                let box = Box(), group = DispatchGroup()
                for (slot, i) in members.enumerated() {
                    group.enter()
                    let script = scripts[i], endpoint = cluster.endpoint
                    Thread {
                        let result = Result { try ConcurrentExactnessTests.run(script, model: model, on: endpoint) }
                        box.lock.withLock { box.results[slot] = result }
                        group.leave()
                    }.start()
                }
                try #require(group.wait(timeout: .now() + 300) == .success, "wave \(wave) on \(workers) workers did not finish")
                for (slot, i) in members.enumerated() {
                    let name = (scripts[i] as NSString).lastPathComponent
                    let together = try #require(box.lock.withLock { box.results[slot] }).get()
                    var errors = Goldens.mismatches(expected: solo[i], actual: together)
                    if !errors.isEmpty, let e = together["error"] { errors.append("error: \(e)") }
                    #expect(errors.isEmpty, "\(name) among 7 others on \(workers) workers:\n\(errors.joined(separator: "\n"))")
                }
            }
            // The traces did share passes (heartbeats bring the counts about once a second).
            let deadline = Date().addingTimeInterval(5)
            while Date() < deadline, !(cluster.statistics.workers.values.contains { $0.largest > 1 }) { Thread.sleep(forTimeInterval: 0.2) }
            let stats = cluster.statistics.workers
            for (worker, p) in stats.sorted(by: { $0.key < $1.key }) {
                print("\((model as NSString).lastPathComponent), \(workers) workers: \(worker) ran \(p.steps) steps in \(p.passes) passes, at most \(p.largest) at once")
            }
            #expect(stats.count == workers && stats.values.allSatisfy { $0.largest > 1 && $0.steps > $0.passes },
                    "\((model as NSString).lastPathComponent) on \(workers) workers: passes \(stats)")
        }
    }
}
