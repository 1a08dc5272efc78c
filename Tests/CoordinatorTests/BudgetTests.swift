import Coordinator
import Foundation
import Graph
import GraphWire
import Testing
import Wire

/// Every size a client controls is checked before it is allocated, on every process: each abuse
/// below once aborted a coordinator, a worker or the client (a 4 TiB allocation, a 30 GB KV
/// cache, a stack overflow). Each is now a typed error naming the op, the shape and the limit,
/// and every process keeps serving. Through real processes (`nnsight serve`, two
/// `nnsight-worker`, `nnsight run` clients).
@Suite(.serialized) struct BudgetTests {
    /// Runs `body` in a trace of one token on the cluster, expecting an over-budget error whose
    /// text contains each of `fragments`; then checks the cluster still generates exactly.
    static func expectRefused(_ cluster: DeliveryTests.Cluster, _ fragments: [String], within seconds: Double = 20,
                              sourceLocation: SourceLocation = #_sourceLocation, _ body: @escaping (LanguageModel) -> Void) throws {
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        let start = Date()
        #expect(sourceLocation: sourceLocation) {
            try model.generate(Oracle.p1, maxNewTokens: 1) { _ in body(model) }
        } throws: { error in
            guard let e = error as? TraceError, e.kind == .overBudget else { return false }
            return fragments.allSatisfy { "\(e)".contains($0) }
        }
        #expect(Date().timeIntervalSince(start) < seconds, sourceLocation: sourceLocation)
        #expect(cluster.workers.allSatisfy { $0.process.isRunning } && cluster.coordinator.process.isRunning, sourceLocation: sourceLocation)
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected, sourceLocation: sourceLocation)
    }

    static func full(_ shape: [Int], _ value: Double = 1) -> TraceValue {
        TraceValue.apply("full", [], Attributes(["shape": .ints(shape), "value": .float(value), "dtype": .string("float32")]))
    }

    @Test func constantOpsTooLargeOrTooLongForTheCoordinatorAreRefused() throws {
        let cluster = try DeliveryTests.Cluster()
        defer { cluster.stop() }
        // full([1,1]) -> expand([2^20, 2^20]) -> clone: a 236-byte submission asking for 4 TiB.
        try Self.expectRefused(cluster, ["expand", "float32[1048576, 1048576]", "4.0 TiB", "the coordinator's limit for ops of constants"]) { _ in
            let big = TraceValue.apply("expand", [Self.full([1, 1])], Attributes(["shape": .ints([1 << 20, 1 << 20])]))
            _ = TraceValue.apply("clone", [big]).save()
        }
        // A broadcast of two constants to 1 GiB.
        try Self.expectRefused(cluster, ["add", "float32[16384, 16384]", "1.0 GiB", "64.0 MiB"]) { _ in
            _ = TraceValue.apply("add", [Self.full([16384, 1]), Self.full([1, 16384])]).save()
        }
        // A 2048 x 2048 product of constants: small, but 8.6 G multiply-adds on the serving loop.
        try Self.expectRefused(cluster, ["matmul", "8.6 G operations"], within: 10) { _ in
            _ = TraceValue.apply("matmul", [Self.full([2048, 2048]), Self.full([2048, 2048])]).save()
        }
    }

    @Test func modelValuesAndBatchesOverTheTracesLimitAreRefusedBeforeTheyRun() throws {
        let cluster = try DeliveryTests.Cluster()
        defer { cluster.stop() }
        // The same expand-and-clone on a module's output (it aborted stage 0, then every spare).
        try Self.expectRefused(cluster, ["expand", "4.0 TiB", "--max-value-mb", "transformer.h[0].output"]) { model in
            let h = TraceValue.apply("index", [model.transformer.h[0].output[0]], Attributes(["index": .index([.at(0), .slice(start: -1, stop: nil, step: nil), .slice(start: nil, stop: 1, step: nil)])]))
            let big = TraceValue.apply("expand", [h], Attributes(["shape": .ints([1 << 20, 1 << 20])]))
            _ = TraceValue.apply("clone", [big]).save()
        }
        // generate(["GNU"] * 100000): a 30.9 GB allocation on stage 0 before.
        let (client, stdout) = try cluster.client("""
            with model.generate(["GNU"] * 100000, max_new_tokens=100) as tracer:
                out = model.generator.output.save()

            """)
        #expect(try DeliveryTests.output(client, stdout, seconds: 60) == "")
        #expect(client.stderr.contains("MemoryError: over budget: a batch of 100000 prompts"), "\(client.stderr)")
        #expect(client.stderr.contains("--max-value-mb"))
        #expect(cluster.workers.allSatisfy { $0.process.isRunning })
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected)
    }

    @Test func aHundredThousandRowFragmentSentToAWorkersPortIsRefused() throws {
        let cluster = try DeliveryTests.Cluster()
        defer { cluster.stop() }
        let status = try LanguageModel.status(of: cluster.endpoint)
        let stage0 = try #require(status.workers.first { $0.stage == 0 })
        // What a peer that reaches the activation port (no CURVE) can send: a fragment of 100,000 rows.
        let fragment = TraceGraph(nodes: [], invokes: [[Int]](repeating: [5], count: 100_000),
                                  generation: GenerationSpec(maxNewTokens: 200, padTokenId: 1999))
        let context = ZMQContext()
        let push = try context.push(connectingTo: stage0.address, keys: nil, serverKey: "")
        try push.send(try Framing.encode(Framing.envelope(requestId: 77) { $0.submit = .with { $0.graph = fragment.wire } }))
        Thread.sleep(forTimeInterval: 3)
        #expect(cluster.workers.allSatisfy { $0.process.isRunning }, "\(cluster.workers[0].stderr)")
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected)
    }

    /// Fragments pushed to a worker's port by a peer that is not the coordinator (no CURVE) held
    /// their KV cache for good and, under `--kv-memory`, wedged the stage: a fragment whose first
    /// step does not come within `--first-step-timeout` is freed.
    @Test func forgedFragmentsThatNeverStepAreFreed() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinator(workers: 1)
        defer { coordinator.stop() }
        let worker = try ChildProcess(ChildProcess.beside("nnsight-worker"), ["--connect", endpoint, "--model", Oracle.model, "--id", "w0",
                                                                              "--threads", "1", "--kv-memory", "1", "--first-step-timeout", "2"])
        defer { worker.stop() }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        let address = try #require(try LanguageModel.status(of: endpoint).workers.first).address
        // Each needs 0.7 MB of the stage's 1 MB of KV cache: the second waits behind the first.
        let fragment = TraceGraph(nodes: [], invokes: [[Int]](repeating: [5], count: 3), generation: GenerationSpec(maxNewTokens: 120, padTokenId: 1999))
        let push = try ZMQContext().push(connectingTo: address, keys: nil, serverKey: "")
        for id in UInt64(101)...102 { try push.send(try Framing.encode(Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = fragment.wire } })) }
        func held() throws -> (UInt32, UInt32) {
            let w = try #require(try LanguageModel.status(of: endpoint).workers.first)
            return (w.traces, w.waitingTraces)
        }
        func waitFor(_ state: (UInt32, UInt32), seconds: Double) throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if try held() == state { return true }
                Thread.sleep(forTimeInterval: 0.2)
            }
            return false
        }
        #expect(try waitFor((1, 1), seconds: 3))
        #expect(try waitFor((0, 0), seconds: 15))  // both freed in turn, 2 s after each was admitted
        #expect(try LivenessTests.generate(endpoint, within: 0) == LivenessTests.expected)
    }

    /// The client's own values: a broadcast past `--max-memory` is refused before it is made, and
    /// inputs that recursed past the stack are Python's RecursionError (the process exits 1, not 134/139).
    @Test(arguments: [
        ("import torch\nx = torch.full([1, 1], 1.0).expand(1048576, 1048576).clone()\n",
         "MemoryError: expand would make a value of float32[1048576, 1048576] (4.0 TiB), over the script's memory limit (--max-memory) of 256.0 MiB"),
        ("import torch\nx = torch.ones(16384, 1) + torch.ones(1, 16384)\n",
         "MemoryError: add would make a value of float32[16384, 16384] (1.0 GiB), over the script's memory limit (--max-memory) of 256.0 MiB"),
        // Each under the limit alone, not beside what the script already holds.
        ("import torch\na = torch.ones(40000000) + 1\n",
         "MemoryError: add of float32[40000000] needs 153 MB beside the"),
        ("x = " + Array(repeating: "1", count: 50_000).joined(separator: "+") + "\nprint(x)\n",
         "RecursionError: maximum recursion depth exceeded during compilation"),
        ("x = []\nfor i in range(100000):\n    x = [x]\nprint(len(x))\n", ""),
        ("x = " + Array(repeating: "1", count: 2_500).joined(separator: "+") + "\nprint(x)\n", ""),
    ])
    func theClientsOwnValuesAndRecursionAreBounded(_ script: String, _ error: String) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("budget-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let file = dir.appendingPathComponent("script.py")
        try script.write(to: file, atomically: true, encoding: .utf8)
        let stdout = dir.appendingPathComponent("stdout.txt")
        let client = try ChildProcess(ChildProcess.beside("nnsight"), ["run", file.path, "--in-process", "--model", Oracle.model, "--max-memory", "256"],
                                      stdout: stdout)
        #expect(client.wait(seconds: 120))
        if error.isEmpty {
            #expect(client.process.terminationStatus == 0, "\(client.stderr)")
            #expect(try String(contentsOf: stdout, encoding: .utf8) == (script.hasPrefix("x = []") ? "1\n" : "2500\n"))
        } else {
            #expect(client.process.terminationStatus == 1, "\(client.stderr)")
            #expect(client.stderr.contains(error), "\(client.stderr)")
        }
    }
}
