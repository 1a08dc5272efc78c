import Coordinator
import Foundation
import Script
import Testing

/// Every oracle case, unchanged, on real worker processes (tcp and ipc; 1, 2 and 3 stages):
/// identical to the goldens, and so to the in-process runs.
@Suite(.serialized) struct ClusterScriptTests {
    static let workerExecutable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        .deletingLastPathComponent().appendingPathComponent("nnsight-worker")

    @Test(arguments: ["tcp", "ipc"], [1, 2, 3])
    func oracleCasesOnWorkerProcesses(transport: String, workers: Int) throws {
        let model = Goldens.fixtures + "/models/tiny-gpt2"
        let cluster = try ProcessCluster(model: model, workers: workers, workerExecutable: Self.workerExecutable,
                                         transport: transport, threadsPerWorker: 1)
        defer { cluster.stop() }
        let client = try LanguageModel.connect(cluster.endpoint, model: model)
        for name in ScriptGoldenTests.cases {
            let base = Goldens.fixtures + "/oracle/" + name
            let outcome = ScriptRunner(model: client, file: base + ".py").run(source: try String(contentsOfFile: base + ".py", encoding: .utf8))
            let actual = try #require(try JSONSerialization.jsonObject(with: Data(outcome.json.utf8)) as? [String: Any])
            let errors = Goldens.mismatches(expected: try Goldens.load(base + ".json"), actual: actual,
                                            extra: name == "iter_all" ? ["after", "marker"] : [])
            #expect(errors.isEmpty, "\(name) on \(workers) \(transport) workers:\n\(errors.joined(separator: "\n"))")
        }
    }
}
