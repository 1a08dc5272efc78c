import Coordinator
import Foundation
import Testing
import Wire

/// CURVE on every connection, through real processes: keys as `nnsight keygen` writes them, a
/// client or worker without an accepted key refused at the handshake with an error that says
/// why, the activation port of a worker open only to its coordinator and its previous stage,
/// and no bind beyond loopback without keys.
@Suite(.serialized) struct CurveTests {
    static let directory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    static let workerExecutable = directory.appendingPathComponent("nnsight-worker")

    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("curve-\(UUID().uuidString)").path
    }

    static func run(_ executable: String, _ arguments: [String], timeout: Double = 30) throws -> (status: Int32, stderr: String, seconds: Double) {
        let process = Process()
        process.executableURL = directory.appendingPathComponent(executable)
        process.arguments = arguments
        let err = Pipe()
        process.standardError = err
        process.standardOutput = FileHandle.nullDevice
        let start = Date()
        try process.run()
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout) { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        let text = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: text, as: UTF8.self), Date().timeIntervalSince(start))
    }

    static func generate(_ model: LanguageModel) throws -> [Int] {
        var output: Saved!
        try model.generate(Oracle.p1, maxNewTokens: 5) { _ in output = model.generator.output.save() }
        return try output.value.ints
    }

    static let expected: [Int] = {
        let model = try! LanguageModel.load(Oracle.model, stages: 1)
        return try! generate(model)
    }()

    @Test func keygenWritesAZ85KeypairWithAPrivateSecret() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try Self.run("nnsight", ["keygen", "--out", dir, "--name", "alice"])
        #expect(r.status == 0, "\(r.stderr)")
        let secret = try String(contentsOfFile: dir + "/alice.key", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pub = try String(contentsOfFile: dir + "/alice.pub", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(secret.count == 40 && pub.count == 40 && CurveKeyPair.isKey(secret) && CurveKeyPair.isKey(pub))
        #expect(try CurveKeyPair(secretKey: secret).publicKey == pub)
        let mode = try #require(try FileManager.default.attributesOfItem(atPath: dir + "/alice.key")[.posixPermissions] as? Int)
        #expect(mode == 0o600)
        #expect(FileManager.default.fileExists(atPath: dir + "/authorized"))
        let again = try Self.run("nnsight", ["keygen", "--out", dir, "--name", "alice"])
        #expect(again.status != 0 && again.stderr.contains("exists; not overwriting a key"))
    }

    @Test func keyDirectoriesThatCannotBeUsedAreClearErrors() throws {
        let dir = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(throws: SecurityError.self) { try KeyDirectory.load(dir) }
        try KeyDirectory.write(try CurveKeyPair.generate(), name: "w0", to: dir)
        #expect { try KeyDirectory.load(dir).requireCoordinatorKey() } throws: { "\($0)".contains("no coordinator.pub") }
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: dir + "/w0.key")
        #expect { try KeyDirectory.load(dir) } throws: { "\($0)".contains("readable by its owner only (chmod 600") }
    }

    /// A Kubernetes Secret volume: every file a symlink into `..data/`, the key itself mode 0400.
    @Test func keysLinkedIntoPlaceAsInASecretVolumeLoad() throws {
        let made = Self.temporaryDirectory(), volume = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: made); try? FileManager.default.removeItem(atPath: volume) }
        try KeyDirectory.write(try CurveKeyPair.generate(), name: "worker", to: made)
        let fm = FileManager.default
        try fm.createDirectory(atPath: volume + "/..2026_12_03/authorized", withIntermediateDirectories: true)
        try fm.copyItem(atPath: made + "/worker.key", toPath: volume + "/..2026_12_03/worker.key")
        try fm.setAttributes([.posixPermissions: 0o400], ofItemAtPath: volume + "/..2026_12_03/worker.key")
        try fm.createSymbolicLink(atPath: volume + "/..data", withDestinationPath: "..2026_12_03")
        try fm.createSymbolicLink(atPath: volume + "/worker.key", withDestinationPath: "..data/worker.key")
        try fm.createSymbolicLink(atPath: volume + "/authorized", withDestinationPath: "..data/authorized")
        let keys = try KeyDirectory.load(volume)
        #expect(keys.name == "worker")
        #expect(keys.own.publicKey == (try KeyDirectory.load(made)).own.publicKey)
        // The permission check follows the link: a readable target is still refused.
        try fm.setAttributes([.posixPermissions: 0o444], ofItemAtPath: volume + "/..2026_12_03/worker.key")
        #expect { try KeyDirectory.load(volume) } throws: { "\($0)".contains("readable by its owner only") }
    }

    @Test func onlyClientsWithAnAcceptedKeyRunTraces() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1, curve: true)
        defer { cluster.stop() }
        let keys = try #require(cluster.clientKeys)
        #expect(try Self.generate(try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: keys)) == Self.expected)

        // No keys: refused at the handshake, with the reason.
        var start = Date()
        #expect { _ = try LanguageModel.connect(cluster.endpoint, model: Oracle.model) } throws: {
            "\($0)".contains("refused the connection") && "\($0)".contains("the server requires CURVE keys")
        }
        #expect(Date().timeIntervalSince(start) < 5)

        // A key the coordinator does not accept (the coordinator's public key known, as an attacker may).
        let stranger = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stranger) }
        try KeyDirectory.write(try CurveKeyPair.generate(), name: "stranger", to: stranger)
        try Data(((keys.coordinatorKey ?? "") + "\n").utf8).write(to: URL(fileURLWithPath: stranger + "/coordinator.pub"))
        start = Date()
        #expect { _ = try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: try KeyDirectory.load(stranger)) } throws: {
            "\($0)".contains("the peer refused this key")
        }
        #expect(Date().timeIntervalSince(start) < 5)
        // The cluster still serves.
        #expect(try Self.generate(try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: keys)) == Self.expected)
    }

    /// A peer without CURVE fails the handshake before the ZAP handler sees it: the coordinator's
    /// handshake monitor logs it (it went unlogged before).
    @Test func aKeylessPeerRefusedAtTheHandshakeIsLogged() throws {
        let keys = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: keys) }
        #expect(try Self.run("nnsight", ["keygen", "--out", keys, "--name", "coordinator"]).status == 0)
        let (coordinator, endpoint) = try LivenessTests.coordinatorEndpoint(try ChildProcess(ChildProcess.beside("nnsight"),
            ["serve", "--model", Oracle.model, "--listen", "tcp://127.0.0.1:*", "--workers", "1", "--keys", keys]))
        defer { coordinator.stop() }
        #expect { _ = try LanguageModel.connect(endpoint, model: Oracle.model) } throws: { "\($0)".contains("refused the connection") }
        // (the reason: different security, or a closed pipe when the client hung up first)
        #expect(coordinator.waitForStderr("handshake refused", seconds: 5), "\(coordinator.stderr)")
        #expect(coordinator.stderr.contains("socket=control \(endpoint)"), "\(coordinator.stderr)")
    }

    @Test func aWorkerWithoutAnAcceptedKeyCannotRegister() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 1, workerExecutable: Self.workerExecutable, threadsPerWorker: 1, curve: true)
        defer { cluster.stop() }
        let keyless = try Self.run("nnsight-worker", ["--connect", cluster.endpoint, "--model", Oracle.model, "--id", "intruder", "--register-timeout", "20"])
        #expect(keyless.status != 0 && keyless.stderr.contains("the coordinator may require CURVE keys"), "\(keyless.stderr)")
        #expect(keyless.seconds < 10)

        let stranger = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: stranger) }
        try KeyDirectory.write(try CurveKeyPair.generate(), name: "intruder", to: stranger)
        try Data(((cluster.clientKeys?.coordinatorKey ?? "") + "\n").utf8).write(to: URL(fileURLWithPath: stranger + "/coordinator.pub"))
        let wrong = try Self.run("nnsight-worker", ["--connect", cluster.endpoint, "--model", Oracle.model, "--id", "intruder",
                                                    "--keys", stranger, "--register-timeout", "20"])
        #expect(wrong.status != 0 && wrong.stderr.contains("the peer refused this key"), "\(wrong.stderr)")
        #expect(wrong.seconds < 10)
        let keys = try #require(cluster.clientKeys)
        #expect(try Self.generate(try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: keys)) == Self.expected)
    }

    @Test func aWorkersActivationPortRefusesEveryKeyButItsSenders() throws {
        let cluster = try ProcessCluster(model: Oracle.model, workers: 2, workerExecutable: Self.workerExecutable, threadsPerWorker: 1, curve: true)
        defer { cluster.stop() }
        let keys = try #require(cluster.clientKeys)
        let model = try LanguageModel.connect(cluster.endpoint, model: Oracle.model, keys: keys)
        #expect(try Self.generate(model) == Self.expected)
        // A client's key (accepted by the coordinator) pushing forged activations straight to a
        // worker: refused at the worker's handshake, so nothing reaches its decoder.
        let pid = try #require(cluster.processes.first?.processIdentifier)
        let ports = try Self.listeningPorts(of: pid)
        #expect(!ports.isEmpty)
        let workerKeys = try KeyDirectory.load(try #require(try Self.keyDirectory(of: pid)))
        let context = ZMQContext()
        for port in ports {
            let push = try context.socket(.push)
            try push.makeCurveClient(keys.own, serverKey: workerKeys.own.publicKey)
            let monitor = try push.monitorHandshakes()
            try push.connect("tcp://127.0.0.1:\(port)")
            try push.send([try Framing.encode(Framing.envelope(requestId: 1) { $0.shutdown = .with { $0.reason = "forged" } })], dontWait: true)
            var failure: String?
            let deadline = Date().addingTimeInterval(5)
            while failure == nil, !monitor.succeeded, Date() < deadline { Thread.sleep(forTimeInterval: 0.05); failure = monitor.failure() }
            #expect(failure?.contains("the peer refused this key") == true, "port \(port): \(failure ?? "handshake succeeded")")
        }
        #expect(try Self.generate(model) == Self.expected)
    }

    /// TCP ports a process listens on (from /proc/PID/net/tcp and its socket inodes).
    static func listeningPorts(of pid: Int32) throws -> [Int] {
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []
        let inodes = Set(fds.compactMap { fd -> String? in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/fd/\(fd)"),
                  target.hasPrefix("socket:[") else { return nil }
            return String(target.dropFirst(8).dropLast())
        })
        let table = try String(contentsOfFile: "/proc/\(pid)/net/tcp", encoding: .utf8)
        return table.split(separator: "\n").dropFirst().compactMap { line in
            let f = line.split(separator: " ")
            guard f.count > 9, f[3] == "0A", inodes.contains(String(f[9])), let port = Int(f[1].split(separator: ":")[1], radix: 16) else { return nil }
            return port
        }
    }

    /// The --keys directory a worker process was started with.
    static func keyDirectory(of pid: Int32) throws -> String? {
        let arguments = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/cmdline")).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return arguments.firstIndex(of: "--keys").map { arguments[$0 + 1] }
    }

    @Test func bindingBeyondLoopbackNeedsKeysOrInsecure() throws {
        #expect(BindPolicy.isLocal("tcp://127.0.0.1:5555") && BindPolicy.isLocal("tcp://localhost:1") && BindPolicy.isLocal("tcp://[::1]:5")
                && BindPolicy.isLocal("ipc:///tmp/x") && BindPolicy.isLocal("inproc://x"))
        #expect(!BindPolicy.isLocal("tcp://0.0.0.0:5555") && !BindPolicy.isLocal("tcp://*:5555") && !BindPolicy.isLocal("tcp://10.0.0.2:5555"))
        let serve = try Self.run("nnsight", ["serve", "--model", Oracle.model, "--listen", "tcp://0.0.0.0:0", "--workers", "1"], timeout: 10)
        #expect(serve.status != 0 && serve.stderr.contains("refusing to bind --listen tcp://0.0.0.0:0 without CURVE keys")
                && serve.stderr.contains("nnsight keygen --out DIR --name NAME"), "\(serve.stderr)")
        let worker = try Self.run("nnsight-worker", ["--connect", "tcp://127.0.0.1:9", "--model", Oracle.model, "--bind", "tcp://0.0.0.0:*"], timeout: 10)
        #expect(worker.status != 0 && worker.stderr.contains("refusing to bind --bind tcp://0.0.0.0:* without CURVE keys"), "\(worker.stderr)")
        // --insecure: a warning, and it binds (the worker then waits for a coordinator; 1 s is enough to see it start).
        let insecure = try Self.run("nnsight-worker", ["--connect", "tcp://127.0.0.1:9", "--model", Oracle.model, "--bind", "tcp://0.0.0.0:*",
                                                       "--insecure", "--register-timeout", "1"], timeout: 10)
        #expect(insecure.stderr.contains("is bound without authentication or encryption (--insecure)") && insecure.stderr.contains("registering"),
                "\(insecure.stderr)")
    }
}
