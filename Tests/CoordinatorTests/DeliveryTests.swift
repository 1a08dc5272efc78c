import Coordinator
import Foundation
import Testing

/// Every value a trace produces reaches its client exactly once, or the trace ends with an error
/// that says why; through real processes (`nnsight serve`, two `nnsight-worker`, and an
/// `nnsight run --cluster` client). Before the outbox, the coordinator's ROUTER dropped what did
/// not fit its high-water mark: a slow client lost saves and even `finished`, without an error.
@Suite(.serialized) struct DeliveryTests {
    /// A cluster of `nnsight serve` and two workers; the debug build reads a 100,000-node
    /// fragment in seconds, during which a stage sends no heartbeat: the worker timeout allows it.
    struct Cluster {
        let coordinator: ChildProcess
        let endpoint: String
        let workers: [ChildProcess]

        init(_ extra: [String] = []) throws {
            let (coordinator, endpoint) = try LivenessTests.coordinatorEndpoint(try ChildProcess(ChildProcess.beside("nnsight"),
                ["serve", "--model", Oracle.model, "--listen", "tcp://127.0.0.1:*", "--workers", "2", "--worker-timeout", "120"] + extra))
            self.coordinator = coordinator
            self.endpoint = endpoint
            workers = try (0..<2).map { try LivenessTests.worker(endpoint, id: "w\($0)") }
            #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        }

        func stop() {
            workers.forEach { $0.stop() }
            coordinator.stop()
        }

        /// `nnsight run SCRIPT --cluster` as a process; its stdout goes to a file.
        func client(_ script: String) throws -> (ChildProcess, URL) {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("delivery-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("script.py")
            try script.write(to: file, atomically: true, encoding: .utf8)
            let stdout = dir.appendingPathComponent("stdout.txt")
            let process = try ChildProcess(ChildProcess.beside("nnsight"), ["run", file.path, "--cluster", endpoint, "--model", Oracle.model],
                                           stdout: stdout)
            return (process, stdout)
        }

        /// How many times the coordinator's log has said `fragment`.
        func count(_ fragment: String) -> Int { coordinator.stderr.components(separatedBy: fragment).count - 1 }

        /// The longest a status request took while `busy` held (polled every 0.2 s).
        func slowestStatus(while busy: () -> Bool) throws -> Double {
            var slowest = 0.0
            while busy() {
                let start = Date()
                _ = try LanguageModel.status(of: endpoint, timeoutSeconds: 10)
                slowest = max(slowest, Date().timeIntervalSince(start))
                Thread.sleep(forTimeInterval: 0.2)
            }
            return slowest
        }

        func waitFor(_ fragment: String, count n: Int, seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if count(fragment) >= n { return true }
                Thread.sleep(forTimeInterval: 0.05)
            }
            return false
        }
    }

    /// `n` saves of 64 floats in one trace: 29 MB for 100,000, more than the kernel's socket
    /// buffers and ZeroMQ's pipes hold for a client that does not read.
    static func appends(_ n: Int) -> String {
        """
        with model.generate("GNU", max_new_tokens=1) as tracer:
            xs = list().save()
            for i in range(\(n)):
                xs.append(model.transformer.h[1].mlp.output[0, -1])
        print(len(xs), xs[0].shape)

        """
    }

    static func output(_ client: ChildProcess, _ stdout: URL, seconds: Double = 240) throws -> String {
        #expect(client.wait(seconds: seconds), "the client did not finish: \(client.stderr)")
        return try String(contentsOf: stdout, encoding: .utf8)
    }

    @Test func aHundredThousandSavesArriveAlsoWhenTheClientReadsLate() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        // Read as they come.
        let (fast, fastOut) = try cluster.client(Self.appends(100_000))
        #expect(try Self.output(fast, fastOut) == "100000 torch.Size([64])\n", "\(fast.stderr)")
        #expect(fast.process.terminationStatus == 0)
        // A client stopped until the coordinator has sent everything (the trace ended there):
        // every save waits for it, and none is lost.
        let (started, ended) = (cluster.count("trace started"), cluster.count("trace ended"))
        let (slow, slowOut) = try cluster.client(Self.appends(100_000))
        #expect(cluster.waitFor("trace started", count: started + 1, seconds: 120))
        slow.signal(SIGSTOP)
        #expect(cluster.waitFor("trace ended", count: ended + 1, seconds: 180))
        Thread.sleep(forTimeInterval: 1)
        slow.signal(SIGCONT)
        #expect(try Self.output(slow, slowOut) == "100000 torch.Size([64])\n", "\(slow.stderr)")
        #expect(slow.process.terminationStatus == 0)
        #expect(cluster.coordinator.stderr.contains("outcome=finished"))
    }

    @Test func aClientThatDoesNotReadEndsItsTraceWithAnErrorAndTheClusterServesOn() throws {
        let cluster = try Cluster(["--client-buffer-mb", "1"])
        defer { cluster.stop() }
        let started = cluster.count("trace started")
        let (client, stdout) = try cluster.client(Self.appends(30_000))  // 9 MB for a 1 MB buffer
        #expect(cluster.waitFor("trace started", count: started + 1, seconds: 120))
        client.signal(SIGSTOP)
        #expect(cluster.waitFor("outcome=undeliverable", count: 1, seconds: 180), "\(cluster.coordinator.stderr)")
        client.signal(SIGCONT)
        #expect(try Self.output(client, stdout) == "")
        #expect(client.process.terminationStatus != 0)
        #expect(client.stderr.contains("could not be sent: the client is not reading"), "\(client.stderr)")
        #expect(client.stderr.contains("--client-buffer-mb 1"))
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected)
    }

    @Test func aClientThatDisconnectsCancelsItsTrace() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let started = cluster.count("trace started")
        let (client, _) = try cluster.client(Self.appends(30_000))
        #expect(cluster.waitFor("trace started", count: started + 1, seconds: 120))
        client.stop()  // SIGKILL: its connection closes
        #expect(cluster.waitFor("outcome=cancelled", count: 1, seconds: 120), "\(cluster.coordinator.stderr)")
        #expect(cluster.waitFor("client disconnected; its traces were cancelled", count: 1, seconds: 5))
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected)
    }

    /// A session's later trace compiles when the earlier ones have run (it takes their values):
    /// a large one compiles beside the serving loop, which answers meanwhile. Inline, 90,000 nodes
    /// held the loop for 5 s here (debug build), and the client gave the coordinator up.
    @Test func aSessionsLargeLaterTraceCompilesBesideTheServingLoop() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let (client, stdout) = try cluster.client("""
            with model.session() as session:
                with model.trace("Hello world"):
                    steer = model.transformer.h[1].output[0][0, -1].save()
                with model.generate("GNU", max_new_tokens=1) as tracer:
                    xs = list().save()
                    for i in range(30000):
                        xs.append(model.transformer.h[1].mlp.output[0, -1, 0] + steer[0])
            print(len(xs))

            """)
        let slowest = try cluster.slowestStatus { client.process.isRunning }
        #expect(try Self.output(client, stdout) == "30000\n", "\(client.stderr)")
        #expect(slowest < 2.5, "the coordinator took \(slowest) s to answer a status request")
    }

    @Test func aSubmissionOverTheMessageLimitIsRefusedAtOnce() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        // Three 200 MB constants: 600 MB, over the 512 MiB a coordinator reads.
        let (client, stdout) = try cluster.client("""
            import torch
            parts = [torch.zeros(50_000_000), torch.ones(50_000_000), torch.zeros(50_000_000)]
            with model.generate("GNU", max_new_tokens=1) as tracer:
                h = model.transformer.h[0].output[0][0, 0, 0]
                ys = [(h + p).save() for p in parts]
            print(len(ys))

            """)
        let start = Date()
        #expect(try Self.output(client, stdout, seconds: 60) == "")
        #expect(Date().timeIntervalSince(start) < 30)
        #expect(client.stderr.contains("MemoryError: over budget: the submission is 572 MB, over the 512 MB message limit"), "\(client.stderr)")
        #expect(try LivenessTests.generate(cluster.endpoint, within: 0) == LivenessTests.expected)
    }
}
