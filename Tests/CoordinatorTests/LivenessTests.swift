import Coordinator
import Foundation
import Graph
import Testing

/// Liveness both ways, with every party a real process (`nnsight serve`, `nnsight-worker`):
/// clients learn of a dead or absent coordinator within seconds, a stalled coordinator keeps its
/// workers, a frozen worker is dropped and registers again when it wakes, and workers register
/// again with a coordinator that restarted.
@Suite(.serialized) struct LivenessTests {
    /// `nnsight serve` for `workers` stages; returns it and its control endpoint.
    static func coordinator(workers: Int, listen: String = "tcp://127.0.0.1:*", workerTimeout: Int = 3) throws -> (ChildProcess, String) {
        try coordinatorEndpoint(try ChildProcess(ChildProcess.beside("nnsight"), ["serve", "--model", Oracle.model, "--listen", listen,
                                                                              "--workers", String(workers), "--worker-timeout", String(workerTimeout)]))
    }

    /// A started `nnsight serve` and the control endpoint it printed (stopped if it prints none).
    static func coordinatorEndpoint(_ c: ChildProcess) throws -> (ChildProcess, String) {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let range = c.stderr.range(of: #"coordinator on (tcp://[0-9.:]+)"#, options: .regularExpression) {
                return (c, String(c.stderr[range].dropFirst("coordinator on ".count)))
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        c.stop()
        throw TraceError.transport("the coordinator did not start: \(c.stderr)")
    }

    static func worker(_ endpoint: String, id: String, coordinatorTimeout: Int = 10) throws -> ChildProcess {
        try ChildProcess(ChildProcess.beside("nnsight-worker"), ["--connect", endpoint, "--model", Oracle.model, "--id", id, "--threads", "1",
                                       "--coordinator-timeout", String(coordinatorTimeout), "--register-timeout", "30"])
    }

    /// Generates 5 tokens of the oracle's prompt; retries while the cluster is not ready.
    static func generate(_ endpoint: String, within seconds: Double = 30) throws -> [Int] {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            do {
                let model = try LanguageModel.connect(endpoint, model: Oracle.model)
                var output: Saved!
                try model.generate(Oracle.p1, maxNewTokens: 5) { _ in output = model.generator.output.save() }
                return try output.value.ints
            } catch let error as TraceError where Date() < deadline && (error.message.contains("not served yet") || error.message.contains("stopped answering at step")) {
                Thread.sleep(forTimeInterval: 0.2)
            }
        }
    }

    static let expected: [Int] = {
        let model = try! LanguageModel.load(Oracle.model, stages: 1)
        var output: Saved!
        try! model.generate(Oracle.p1, maxNewTokens: 5) { _ in output = model.generator.output.save() }
        return try! output.value.ints
    }()

    @Test func aClientOfAnAbsentCoordinatorFailsWithinSeconds() throws {
        let start = Date()
        #expect {
            _ = try LanguageModel.connect("tcp://127.0.0.1:9", model: Oracle.model)
        } throws: { error in
            "\(error)".contains("no coordinator answered at tcp://127.0.0.1:9 within 5 s")
        }
        #expect(Date().timeIntervalSince(start) < 8)
    }

    @Test func aKilledCoordinatorEndsTheClientsTraceWithinSeconds() throws {
        let (coordinator, endpoint) = try Self.coordinator(workers: 1, workerTimeout: 60)
        defer { coordinator.stop() }
        let worker = try Self.worker(endpoint, id: "w0")
        defer { worker.stop() }
        #expect(try Self.generate(endpoint) == Self.expected)
        // The worker frozen: the trace waits; then the coordinator dies under it.
        worker.signal(SIGSTOP)
        let model = try LanguageModel.connect(endpoint, model: Oracle.model)
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { coordinator.signal(SIGKILL) }
        let start = Date()
        #expect {
            try model.generate(Oracle.p1, maxNewTokens: 5) { _ in _ = model.generator.output.save() }
        } throws: { error in
            "\(error)".contains("the coordinator at \(endpoint) stopped answering")
        }
        let waited = Date().timeIntervalSince(start)
        #expect(waited > 1 && waited < 9, "\(waited) s")
    }

    @Test func aStalledCoordinatorKeepsItsWorkers() throws {
        let (coordinator, endpoint) = try Self.coordinator(workers: 2)
        defer { coordinator.stop() }
        let workers = try (0..<2).map { try Self.worker(endpoint, id: "w\($0)") }
        defer { workers.forEach { $0.stop() } }
        #expect(try Self.generate(endpoint) == Self.expected)
        coordinator.signal(SIGSTOP)
        Thread.sleep(forTimeInterval: 5)  // longer than the 3 s worker timeout
        coordinator.signal(SIGCONT)
        Thread.sleep(forTimeInterval: 1)
        #expect(try Self.generate(endpoint, within: 0) == Self.expected)
        #expect(coordinator.stderr.contains("the coordinator was stalled; re-checking the workers"))
        #expect(!coordinator.stderr.contains("worker lost"), "\(coordinator.stderr)")
        #expect(workers.allSatisfy { $0.process.isRunning })
    }

    @Test func aFrozenWorkerIsDroppedAndRegistersAgainWhenItWakes() throws {
        let (coordinator, endpoint) = try Self.coordinator(workers: 2)
        defer { coordinator.stop() }
        let workers = try (0..<2).map { try Self.worker(endpoint, id: "w\($0)") }
        defer { workers.forEach { $0.stop() } }
        #expect(try Self.generate(endpoint) == Self.expected)
        workers[1].signal(SIGSTOP)
        Thread.sleep(forTimeInterval: 5)
        #expect(coordinator.stderr.contains("worker lost"))
        workers[1].signal(SIGCONT)
        #expect(try Self.generate(endpoint, within: 20) == Self.expected)
        #expect(workers[1].stderr.contains("registering again"), "\(workers[1].stderr)")
        #expect(workers.allSatisfy { $0.process.isRunning })
    }

    @Test func workersRegisterAgainWithARestartedCoordinator() throws {
        var (coordinator, endpoint) = try Self.coordinator(workers: 2)
        let workers = try (0..<2).map { try Self.worker(endpoint, id: "w\($0)", coordinatorTimeout: 2) }
        defer { workers.forEach { $0.stop() } }
        #expect(try Self.generate(endpoint) == Self.expected)
        coordinator.signal(SIGKILL)
        coordinator.stop()
        (coordinator, endpoint) = try Self.coordinator(workers: 2, listen: endpoint)
        defer { coordinator.stop() }
        #expect(try Self.generate(endpoint, within: 30) == Self.expected)
        #expect(workers.allSatisfy { $0.process.isRunning && $0.stderr.contains("registering again") })
    }
}
