import Coordinator
import Engine
import Foundation
import Testing
import Wire
import Worker

/// The cluster under load, under failure, and under bad input.
@Suite(.serialized) struct ClusterTests {
    static let workerExecutable = ProcessClusterTests.workerExecutable

    /// A trace that differs per client: its own prompt, edit layer, edit step and saves.
    static func trace(_ model: LanguageModel, client i: Int) throws -> [Double] {
        let prompts = [Oracle.p1, "Hello world", "The city of", "Tower"]
        var output: Saved!, last: SavedList!
        try model.generate(prompts[i % 4], maxNewTokens: 4 + i % 3) { tracer in
            last = tracer.list().save()
            for step in tracer.all() {
                if step == i % 3 { model.transformer.h[i % 4].output[0][.all, -1, .all] = model.transformer.h[i % 4].output[0][.all, -1, .all] * Double(i) }
                last.append(model.transformer.h[-1].output[0][.all, -1, .slice(0, 8)])
            }
            output = model.generator.output.save()
        }
        return try output.value.doubles + last.items.flatMap(\.doubles)
    }

    /// Runs `body` for clients 0..<count at once, each on its own thread with its own connection
    /// to `endpoint`; nil when they did not all finish within 120 s.
    static func concurrently(_ count: Int, on endpoint: String,
                             _ body: @escaping @Sendable (Int, LanguageModel) throws -> [Double]) -> [Int: Result<[Double], Error>]? {
        final class Box: @unchecked Sendable {
            let lock = NSLock()
            var results: [Int: Result<[Double], Error>] = [:]
        }
        let box = Box(), group = DispatchGroup()
        for i in 0..<count {
            group.enter()
            Thread {
                let result = Result { try body(i, try LanguageModel.connect(endpoint, model: Oracle.model)) }
                box.lock.withLock { box.results[i] = result }
                group.leave()
            }.start()
        }
        guard group.wait(timeout: .now() + 120) == .success else { return nil }
        return box.lock.withLock { box.results }
    }

    @Test func eightConcurrentClientsGetExactlyTheirOwnResults() throws {
        let local = try LanguageModel.load(Oracle.model, stages: 2)
        let expected = try (0..<8).map { try Self.trace(local, client: $0) }
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1)
        defer { cluster.stop() }
        let results = try #require(Self.concurrently(8, on: cluster.endpoint) { i, client in try ClusterTests.trace(client, client: i) })
        for i in 0..<8 {
            let got = try #require(results[i]).get()
            #expect(got.count == expected[i].count)
            #expect(zip(got, expected[i]).allSatisfy { abs($0 - $1) <= 1e-4 + 1e-4 * abs($1) }, "client \(i) got another trace's values")
        }
    }

    @Test func aKilledWorkerFailsItsTraceAndAReplacementRestoresService() throws {
        // Replay off (--replay-timeout 0): the trace ends at once with the error (ReplayTests has the replay).
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1,
                                         replayTimeoutMs: 0)
        defer { cluster.stop() }
        let client = try LanguageModel.connect(cluster.endpoint, model: Oracle.model, timeoutSeconds: 60)
        let victim = cluster.processes[1]
        // Kill the worker once generation is under way: when step 1's tokens arrive.
        client.onEvent = { event in
            if case let .tokens(step, _) = event, step == 1 { kill(victim.processIdentifier, SIGKILL) }
        }
        let start = Date()
        var failure: Error?
        do {
            try client.generate(Oracle.p1, maxNewTokens: 116) { tracer in
                for _ in tracer.all() { _ = client.lmHead.output.save() }
            }
        } catch { failure = error }
        client.onEvent = nil
        let message = "\(failure.map { "\($0)" } ?? "no error")"
        #expect(message.contains("stopped answering at step"), "\(message)")
        #expect(message.contains("worker-1-") && message.contains("layers"), "\(message)")
        #expect(Date().timeIntervalSince(start) < 15)

        // Until a replacement registers, traces are refused with a clear error.
        #expect(throws: TraceError.self) { try client.generate(Oracle.p1, maxNewTokens: 2) { _ in } }
        let replacement = Process()
        replacement.executableURL = Self.workerExecutable
        replacement.arguments = ["--connect", cluster.endpoint, "--model", Oracle.model, "--id", "replacement", "--threads", "1"]
        replacement.standardError = FileHandle.nullDevice
        try replacement.run()
        defer { replacement.terminate() }
        var output: Saved!
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            do {
                try client.generate(Oracle.p1, maxNewTokens: 5) { _ in output = client.generator.output.save() }
                break
            } catch { Thread.sleep(forTimeInterval: 0.2) }
        }
        try Oracle.expectMatch(try output.value, try Oracle.saves("generate_basic")["output"], "output after replacement")
    }

    @Test func badPeersGetClearErrorsAndTheClusterKeepsServing() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 1, workerExecutable: Self.workerExecutable, threadsPerWorker: 1)
        defer { cluster.stop() }
        let context = ZMQContext()
        let peer = try context.socket(.dealer)
        try peer.setIdentity("intruder")
        try peer.connect(cluster.endpoint)
        func exchange(_ frame: Data) throws -> Nnsight_V1_Error {
            try peer.send(frame)
            let reply = try #require(try peer.receive(timeoutMs: 5000))
            return try Framing.decode(reply[0]).error
        }
        // Garbage.
        #expect(try exchange(Data([1, 2, 3, 250])).code == .errorMalformed)
        // Another protocol version.
        var hello = Framing.envelope { $0.hello = .with { $0.workerID = "intruder"; $0.address = "tcp://127.0.0.1:1"; $0.model = "x" } }
        hello.protocolVersion = 9
        #expect(try exchange(try Framing.encode(hello)).code == .errorVersionMismatch)
        // A worker for another model.
        hello.protocolVersion = WireProtocol.version
        #expect(try exchange(try Framing.encode(hello)).code == .errorModelMismatch)
        // A second worker for a range that is already served.
        let config = try GPT2Config.load(directory: Oracle.model)
        hello.hello.model = config.architectureId
        let refused = try exchange(try Framing.encode(hello))
        #expect(refused.code == .errorRefused && refused.message.contains("already served"))
        // A trace for a model the cluster does not serve.
        let wrong = try LanguageModel.connect(cluster.endpoint, model: Oracle.fixtures + "/../../Models/tiny-license-gpt2")
        #expect { try wrong.generate("Hello", maxNewTokens: 2) { _ in } } throws: { "\($0)".contains("this cluster serves") }
        // Still serving.
        let client = try LanguageModel.connect(cluster.endpoint, model: Oracle.model)
        var output: Saved!
        try client.generate(Oracle.p1, maxNewTokens: 5) { _ in output = client.generator.output.save() }
        try Oracle.expectMatch(try output.value, try Oracle.saves("generate_basic")["output"], "output")
    }

    /// A last stage that answers a step with the wrong number of tokens: the trace ends with an
    /// error naming the step and the counts, and the coordinator goes on serving.
    @Test func aStepResultWithTheWrongNumberOfTokensEndsTheTraceNotTheCoordinator() throws {
        let state = CoordinatorThread(options: ClusterCoordinator.Options(model: Oracle.model, workers: 1))
        defer { state.stop() }
        let endpoint = try state.start()
        // A fake worker: registers, is assigned every layer, then answers each step with no tokens.
        let context = ZMQContext()
        let input = try context.socket(.pull)
        try input.bind("tcp://127.0.0.1:*")
        let control = try context.socket(.dealer)
        try control.setIdentity("fake-stage")
        try control.connect(endpoint)
        let config = try GPT2Config.load(directory: Oracle.model)
        try control.send(try Framing.encode(Framing.envelope {
            $0.hello = .with { $0.workerID = "fake-stage"; $0.address = input.lastEndpoint; $0.model = config.architectureId }
        }))
        let assignment = try Framing.decode(try #require(try control.receive(timeoutMs: 5000))[0]).assignment
        try control.send(try Framing.encode(Framing.envelope { $0.assignment = assignment }))
        let results = try context.socket(.push)
        try results.connect(assignment.resultsAddress)

        let client = Thread {
            do {
                let model = try LanguageModel.connect(endpoint, model: Oracle.model, timeoutSeconds: 20)
                try model.generate(Oracle.p1, maxNewTokens: 3) { _ in }
                state.record(nil)
            } catch { state.record("\(error)") }
        }
        client.start()
        var answered = false
        let deadline = Date().addingTimeInterval(10)
        while state.outcome == nil && Date() < deadline {
            guard let frames = try input.receive(timeoutMs: 100), case let envelope = try Framing.decode(frames[0]),
                  case let .activations(a)? = envelope.body, !answered else { continue }
            try results.send(try Framing.encode(Framing.envelope(requestId: envelope.requestID) {
                $0.stepResult = .with { $0.step = a.step; $0.nextTokens = [] }
            }))
            answered = true
        }
        let message = try #require(state.outcome ?? nil)
        #expect(message.contains("the last stage sent 0 tokens for step 0, the batch has 1 rows"), "\(message)")
        // Still serving: it answers the fake stage's heartbeat.
        try control.send(try Framing.encode(Framing.envelope { $0.heartbeat = .with { $0.sender = "fake-stage" } }))
        var heard = false
        while !heard, let frames = try control.receive(timeoutMs: 5000) {
            heard = (try? Framing.decode(frames[0]))?.body.map { if case .heartbeat = $0 { true } else { false } } ?? false
        }
        #expect(heard)
    }
}

/// A `ClusterCoordinator` serving on a thread of its own, and what a client thread reported.
final class CoordinatorThread: @unchecked Sendable {
    let options: ClusterCoordinator.Options
    private let lock = NSLock()
    private var stopping = false
    private var reported: String??
    private let finished = DispatchSemaphore(value: 0)

    init(options: ClusterCoordinator.Options) { self.options = options }

    /// Starts serving; returns the control endpoint.
    func start() throws -> String {
        let started = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var endpoint: Result<String, Error> = .failure(TraceError.transport("not started"))
        Thread {
            do {
                let coordinator = try ClusterCoordinator(self.options)
                endpoint = .success(coordinator.endpoint)
                started.signal()
                try coordinator.serve { self.lock.withLock { self.stopping } }
            } catch {
                endpoint = .failure(error)
                started.signal()
            }
            self.finished.signal()
        }.start()
        started.wait()
        return try endpoint.get()
    }

    func stop() {
        lock.withLock { stopping = true }
        _ = finished.wait(timeout: .now() + 5)
    }

    /// The client's error message, or nil when its trace succeeded.
    func record(_ message: String?) { lock.withLock { reported = .some(message) } }
    var outcome: String?? { lock.withLock { reported } }
}
