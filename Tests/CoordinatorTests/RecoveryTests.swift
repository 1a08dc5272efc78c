import Coordinator
import Engine
import Foundation
import Graph
import GraphWire
import Synchronization
import Testing
import Wire

/// The cluster recovers from what operators do to it, and says so truthfully: a worker restarted
/// under the same id at once (systemd's `RestartSec=2s`), a coordinator paused longer than the
/// workers wait for it. Both once left the cluster saying `serving` while traces hung, until the
/// workers gave up 60 s later. Through real processes.
@Suite(.serialized) struct RecoveryTests {
    @Test func aWorkerRestartedUnderTheSameIdIsAdmittedAtOnce() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinator(workers: 2)
        defer { coordinator.stop() }
        let w0 = try LivenessTests.worker(endpoint, id: "w0")
        defer { w0.stop() }
        var w1 = try LivenessTests.worker(endpoint, id: "w1")
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        w1.stop()  // SIGKILL, and a new process under the same id within the second
        w1 = try LivenessTests.worker(endpoint, id: "w1")
        defer { w1.stop() }
        try Self.expectServing(endpoint, within: 10, by: ["w0", "w1"])
        #expect(coordinator.stderr.contains("worker registered again while serving its stage"), "\(coordinator.stderr)")
    }

    /// The cluster generates exactly within `seconds`, and status says ready with `workers` ready.
    static func expectServing(_ endpoint: String, within seconds: Double, by workers: [String],
                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let start = Date()
        #expect(try LivenessTests.generate(endpoint, within: 2 * seconds) == LivenessTests.expected, sourceLocation: sourceLocation)
        #expect(Date().timeIntervalSince(start) < seconds, sourceLocation: sourceLocation)
        let status = try LanguageModel.status(of: endpoint)
        #expect(status.ready && status.workers.filter(\.ready).map(\.id).sorted() == workers, sourceLocation: sourceLocation)
    }

    /// A spare that says Hello but never loads (never acknowledges its assignment) is given the
    /// lost worker's layers first (it was heard from last); it loses them after `--load-timeout`
    /// however often it speaks, and the real spare takes them. It once held them for good.
    @Test func aSpareThatNeverBecomesReadyLosesItsRangeToAReadyOne() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinatorEndpoint(try ChildProcess(ChildProcess.beside("nnsight"),
            ["serve", "--model", Oracle.model, "--listen", "tcp://127.0.0.1:*", "--workers", "2", "--worker-timeout", "3",
             "--load-timeout", "5", "--replay-timeout", "60"]))
        defer { coordinator.stop() }
        let w0 = try LivenessTests.worker(endpoint, id: "w0")
        defer { w0.stop() }
        let w1 = try LivenessTests.worker(endpoint, id: "w1")
        defer { w1.stop() }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        let spare = try ChildProcess(ChildProcess.beside("nnsight-worker"), ["--connect", endpoint, "--model", Oracle.model, "--id", "spare",
                                                                             "--threads", "1", "--standby"])
        defer { spare.stop() }
        // The fake spare: a standby Hello every half second, nothing else.
        let stop = Atomic<Bool>(false)
        let architecture = try GPT2Config.load(directory: Oracle.model).architectureId
        let fake = Thread {
            guard let socket = try? ZMQContext().socket(.dealer) else { return }
            try? socket.setIdentity("fake")
            try? socket.connect(endpoint)
            let hello = try? Framing.encode(Framing.envelope {
                $0.hello = .with { $0.workerID = "fake"; $0.address = "tcp://127.0.0.1:9"; $0.model = architecture; $0.standby = true }
            })
            while !stop.load(ordering: .relaxed) {
                if let hello { try? socket.send(hello) }
                _ = try? socket.receive(timeoutMs: 500)
            }
        }
        fake.start()
        defer { stop.store(true, ordering: .relaxed) }
        Thread.sleep(forTimeInterval: 3)  // both spares waiting
        w1.stop()
        try Self.expectServing(endpoint, within: 30, by: ["spare", "w0"])
        #expect(coordinator.stderr.contains("worker=fake [Coordinator] worker did not become ready within the load timeout"), "\(coordinator.stderr)")
    }

    /// A coordinator restarted on its port under a waiting client: the client's heartbeats reach
    /// the new process, which answers that it holds no such trace; the client had waited for its
    /// deadline before.
    @Test func aClientWhoseCoordinatorRestartedMidTraceIsToldAtOnce() throws {
        let (first, endpoint) = try LivenessTests.coordinator(workers: 1, workerTimeout: 60)
        let worker = try LivenessTests.worker(endpoint, id: "w0")
        defer { worker.stop() }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        worker.signal(SIGSTOP)  // the trace waits
        defer { worker.signal(SIGCONT) }
        let restarted = Mutex<ChildProcess?>(nil)
        defer { first.stop(); restarted.withLock { $0?.stop() } }
        let model = try LanguageModel.connect(endpoint, model: Oracle.model, timeoutSeconds: 120)
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) {
            first.signal(SIGKILL)
            first.stop()
            let again = try? LivenessTests.coordinator(workers: 1, listen: endpoint, workerTimeout: 60).0
            restarted.withLock { $0 = again }
        }
        let start = Date()
        #expect {
            try model.generate(Oracle.p1, maxNewTokens: 5) { _ in _ = model.generator.output.save() }
        } throws: { error in
            "\(error)".contains("has no trace for this request: it restarted")
        }
        #expect(Date().timeIntervalSince(start) < 8)
    }

    /// A stopped worker whose pipe fills (ZeroMQ's high-water mark: 1,000 messages) once blocked
    /// the coordinator's serving loop in a send: nothing was answered, and the worker could not
    /// even be found lost. Sends to workers do not block now; what does not fit waits.
    @Test func aStoppedWorkerWithAFullPipeDoesNotStopTheCoordinator() throws {
        let cluster = try DeliveryTests.Cluster()
        defer { cluster.stop() }
        cluster.workers[0].signal(SIGSTOP)
        defer { cluster.workers[0].signal(SIGCONT) }
        // 1,200 traces from one client, without waiting: a fragment (with a 10 KB constant) and a
        // first step each for the stopped stage 0: 2,400 messages, 12 MB, more than the kernel's
        // socket buffers and the pipe's 1,000 messages hold.
        let architecture = try GPT2Config.load(directory: Oracle.model).architectureId
        let nodes = [
            GraphNode(id: 1, steps: [0], kind: .constant(Tensor(shape: [40, 1, 1, 64], floats: [Float](repeating: 0.5, count: 2560)))),
            GraphNode(id: 2, steps: [0], kind: .read(ModuleRead(.mlp(0), .output))),
            GraphNode(id: 3, steps: [0], kind: .op(name: "add", inputs: [2, 1], attributes: Attributes())),
            GraphNode(id: 4, steps: [0], kind: .save(node: 3, saveID: 4)),
        ]
        let graph = TraceGraph(nodes: nodes, invokes: [[5, 6, 7]], generation: GenerationSpec(maxNewTokens: 1, padTokenId: 1999),
                               limits: GraphLimits(deadlineUnixMs: UInt64((Date().timeIntervalSince1970 + 120) * 1000))).wire
        let client = try ZMQContext().socket(.dealer)
        try client.setIdentity("flood")
        try client.connect(cluster.endpoint)
        for id in UInt64(1)...1200 {
            try client.send(try Framing.encode(Framing.envelope(requestId: id) { $0.submit = .with { $0.graph = graph; $0.model = architecture } }))
        }
        #expect(cluster.waitFor("trace started", count: 1201, seconds: 60))
        let end = Date().addingTimeInterval(4)
        let slowest = try cluster.slowestStatus { Date() < end }
        #expect(slowest < 2.5, "the coordinator took \(slowest) s to answer a status request")
        cluster.workers[0].signal(SIGCONT)
        #expect(try LivenessTests.generate(cluster.endpoint, within: 60) == LivenessTests.expected)
    }

    @Test func aCoordinatorPausedLongerThanTheWorkersWaitRecovers() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinator(workers: 2)
        defer { coordinator.stop() }
        let workers = try (0..<2).map { try LivenessTests.worker(endpoint, id: "w\($0)") }  // --coordinator-timeout 10
        defer { workers.forEach { $0.stop() } }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        coordinator.signal(SIGSTOP)
        Thread.sleep(forTimeInterval: 15)
        coordinator.signal(SIGCONT)
        try Self.expectServing(endpoint, within: 15, by: ["w0", "w1"])
        #expect(workers.allSatisfy { $0.process.isRunning && $0.stderr.contains("registering again") })
    }
}
