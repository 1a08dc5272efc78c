import Foundation
import Testing
import Wire

/// Whether the kernel has tc's netem (delay and loss); some have no sch_netem module.
let netemAvailable: Bool = {
    guard networkNamespacesAvailable else { return false }
    let probe = "nnnetem-\(getpid())"
    defer { NetworkFaultTests.sh(["ip", "netns", "del", probe]) }
    return NetworkFaultTests.sh(["ip", "netns", "add", probe]) == 0
        && NetworkFaultTests.sh(["ip", "netns", "exec", probe, "ip", "link", "add", "p0", "type", "veth", "peer", "name", "p1"]) == 0
        && NetworkFaultTests.sh(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "p0", "root", "netem", "delay", "1ms"]) == 0
}()

/// Whether this machine lets the tests make hosts of their own (root, iproute2, namespaces).
let networkNamespacesAvailable: Bool = {
    guard geteuid() == 0 else { return false }
    let probe = "nnprobe-\(getpid())"
    guard NetworkFaultTests.sh(["ip", "netns", "add", probe]) == 0 else { return false }
    NetworkFaultTests.sh(["ip", "netns", "del", probe])
    return true
}()

/// Faults across real network interfaces: the coordinator and each worker on a host of its own
/// (a network namespace, joined to the coordinator's by a veth pair; the coordinator's host routes
/// between the workers'), every connection CURVE-encrypted, the client a `nnsight run --cluster`
/// process on the coordinator's host. Needs root and iproute2 (CI installs it).
@Suite(.serialized, .enabled(if: networkNamespacesAvailable, "network namespaces are unavailable here (needs root and iproute2: `ip netns add`)"))
struct NetworkFaultTests {
    @discardableResult
    static func sh(_ arguments: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }

    /// A coordinator host and `workers` worker hosts: worker i is 10.77.i.2, reached from the
    /// coordinator's host (10.77.0.1 and 10.77.i.1) over the veth pair cI-TAG / wI-TAG.
    final class Hosts {
        let tag = String(UUID().uuidString.prefix(5)).lowercased()
        let workers: Int
        var coordinator: String { "nnc-\(tag)" }
        func worker(_ i: Int) -> String { "nnw\(i)-\(tag)" }
        func workerLink(_ i: Int) -> String { "w\(i)-\(tag)" }
        func coordinatorLink(_ i: Int) -> String { "c\(i)-\(tag)" }
        static func address(_ i: Int) -> String { "10.77.\(i).2" }
        let coordinatorAddress = "10.77.0.1"

        init(workers: Int) throws {
            self.workers = workers
            var ok = Self.run(["ip", "netns", "add", coordinator]) && Self.inHost(coordinator, ["ip", "link", "set", "lo", "up"])
                && Self.inHost(coordinator, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
            for i in 0..<workers where ok {
                let host = worker(i)
                ok = Self.run(["ip", "netns", "add", host]) && Self.inHost(host, ["ip", "link", "set", "lo", "up"])
                    && Self.run(["ip", "link", "add", coordinatorLink(i), "netns", coordinator, "type", "veth", "peer", "name", workerLink(i), "netns", host])
                    && Self.inHost(coordinator, ["ip", "addr", "add", "10.77.\(i).1/24", "dev", coordinatorLink(i)])
                    && Self.inHost(coordinator, ["ip", "link", "set", coordinatorLink(i), "up"])
                    && Self.inHost(host, ["ip", "addr", "add", "\(Self.address(i))/24", "dev", workerLink(i)])
                    && Self.inHost(host, ["ip", "link", "set", workerLink(i), "up"])
                    && Self.inHost(host, ["ip", "route", "add", "default", "via", "10.77.\(i).1"])
            }
            guard ok else {
                remove()
                throw SecurityError.directory("could not make the test hosts")
            }
        }

        func remove() {
            for i in 0..<workers { sh(["ip", "netns", "del", worker(i)]) }
            sh(["ip", "netns", "del", coordinator])
        }

        static func run(_ arguments: [String]) -> Bool { sh(arguments) == 0 }
        static func inHost(_ host: String, _ arguments: [String]) -> Bool { sh(["ip", "netns", "exec", host] + arguments) == 0 }
    }

    /// A process on a host (`ip netns exec` execs it in place: the pid is the executable's own).
    static func remote(host: String, _ executable: String, _ arguments: [String], stdout: URL? = nil) throws -> ChildProcess {
        try ChildProcess(URL(fileURLWithPath: "/usr/bin/env"), ["ip", "netns", "exec", host, ChildProcess.beside(executable).path] + arguments, stdout: stdout)
    }

    /// Keys for a coordinator, `workers` workers and a client, as `nnsight keygen` writes them.
    static func keys(workers: Int) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("netkeys-\(UUID().uuidString)").path
        try KeyDirectory.makeCluster(at: root, parties: ["client"] + (0..<workers).map { "w\($0)" })
        return root
    }

    /// A cluster on the hosts: the coordinator, `serving` workers and the rest as spares.
    final class Cluster {
        let hosts: Hosts
        let keys: String
        let coordinator: ChildProcess
        var workers: [ChildProcess] = []
        var endpoint: String { "tcp://\(hosts.coordinatorAddress):5555" }

        init(serving: Int, spares: Int = 0, workerTimeout: Int = 2, registerTimeout: Int = 30) throws {
            hosts = try Hosts(workers: serving + spares)
            keys = try NetworkFaultTests.keys(workers: serving + spares)
            // Results and the workers' ports bound to every interface: the workers reach the results
            // where they reach --listen, and others reach a worker at its --advertise address.
            coordinator = try NetworkFaultTests.remote(host: hosts.coordinator, "nnsight", [
                "serve", "--model", Oracle.model, "--listen", "tcp://\(hosts.coordinatorAddress):5555",
                "--results", "tcp://0.0.0.0:5556", "--workers", String(serving), "--keys", keys + "/coordinator",
                "--worker-timeout", String(workerTimeout), "--replay-timeout", "30",
            ])
            guard coordinator.waitForStderr("coordinator on", seconds: 20) else { throw SecurityError.directory("no coordinator: \(coordinator.stderr)") }
            for i in 0..<(serving + spares) {
                workers.append(try NetworkFaultTests.remote(host: hosts.worker(i), "nnsight-worker", [
                    "--connect", endpoint, "--bind", "tcp://0.0.0.0:*", "--advertise", Hosts.address(i), "--model", Oracle.model, "--id", "w\(i)",
                    "--keys", keys + "/w\(i)", "--threads", "1", "--coordinator-timeout", "3", "--register-timeout", String(registerTimeout),
                ] + (i >= serving ? ["--standby"] : [])))
                if i == serving - 1 { _ = coordinator.waitForStderr("stage ready", seconds: 20) }
            }
        }

        /// `nnsight run` of `script` on the coordinator's host; its stdout (the script's prints) to a file.
        func client(_ script: String, output: URL) throws -> ChildProcess {
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("net-\(UUID().uuidString).py")
            try script.write(to: file, atomically: true, encoding: .utf8)
            return try NetworkFaultTests.remote(host: hosts.coordinator, "nnsight", ["run", "--cluster", endpoint, "--model", Oracle.model,
                                                                   "--keys", keys + "/client", "--stream-tokens", file.path], stdout: output)
        }

        /// Runs `script` to its end; returns its stdout, exit status and seconds.
        func run(_ script: String, during fault: ((ChildProcess) -> Void)? = nil, timeout: Double = 120) throws -> (stdout: String, status: Int32, seconds: Double) {
            let output = FileManager.default.temporaryDirectory.appendingPathComponent("net-\(UUID().uuidString).out")
            let start = Date()
            let client = try client(script, output: output)
            fault?(client)
            _ = client.wait(seconds: timeout)
            client.stop()
            return (try String(contentsOf: output, encoding: .utf8), client.process.terminationStatus, Date().timeIntervalSince(start))
        }

        func stop() {
            for w in workers { w.stop() }
            coordinator.stop()
            hosts.remove()
            try? FileManager.default.removeItem(atPath: keys)
        }
    }

    /// 40 tokens with an edit at step 3 and a value printed at every step.
    static let script = """
        with model.generate("The Eiffel Tower is in the city of", max_new_tokens=40) as tracer:
            for step in tracer.iter[:]:
                if step == 3:
                    model.transformer.h[1].output[0][:] = 0
                print(step, model.transformer.h[2].output[0].abs().sum().item(), model.lm_head.output[0, -1].argmax(dim=-1).item())
            out = model.generator.output.save()
        print(out.tolist())

        """

    @Test func aWorkerKilledMidGenerationIsReplayedOnASpareAcrossHosts() throws {
        let cluster = try Cluster(serving: 2, spares: 1)
        defer { cluster.stop() }
        let undisturbed = try cluster.run(Self.script)
        #expect(undisturbed.status == 0 && undisturbed.stdout.split(separator: "\n").count == 41, "\(undisturbed)")
        let faulted = try cluster.run(Self.script) { client in
            _ = client.waitForStderr("step 10:", seconds: 30)
            cluster.workers[1].signal(SIGKILL)
        }
        #expect(faulted.status == 0 && faulted.stdout == undisturbed.stdout, "\(faulted)\n\(cluster.coordinator.stderr)")
        #expect(cluster.coordinator.stderr.contains("trace replayed"))
    }

    @Test func aFrozenWorkerIsReplacedAndNeverCorruptsATraceWhenItWakes() throws {
        let cluster = try Cluster(serving: 2, spares: 1)
        defer { cluster.stop() }
        let undisturbed = try cluster.run(Self.script)
        let faulted = try cluster.run(Self.script) { client in
            _ = client.waitForStderr("step 10:", seconds: 30)
            cluster.workers[0].signal(SIGSTOP)
        }
        #expect(faulted.status == 0 && faulted.stdout == undisturbed.stdout, "\(faulted)")
        cluster.workers[0].signal(SIGCONT)
        // Told it was dropped, it registers again; every range is served, so it is refused and exits.
        #expect(cluster.workers[0].wait(seconds: 20), "\(cluster.workers[0].stderr)")
        #expect(cluster.workers[0].stderr.contains("registering again"))
        let after = try cluster.run(Self.script)
        #expect(after.status == 0 && after.stdout == undisturbed.stdout)
    }

    @Test func aLinkDownForASecondDelaysTheTraceOnly() throws {
        let cluster = try Cluster(serving: 2, workerTimeout: 5)
        defer { cluster.stop() }
        let undisturbed = try cluster.run(Self.script)
        let host = cluster.hosts.worker(1), link = cluster.hosts.workerLink(1)
        let faulted = try cluster.run(Self.script) { client in
            _ = client.waitForStderr("step 10:", seconds: 30)
            #expect(Hosts.inHost(host, ["ip", "link", "set", link, "down"]))
            Thread.sleep(forTimeInterval: 1)
            #expect(Hosts.inHost(host, ["ip", "link", "set", link, "up"]))
            // A link going down takes its routes with it; the host's network setup restores them.
            #expect(Hosts.inHost(host, ["ip", "route", "replace", "default", "via", "10.77.1.1"]))
        }
        #expect(faulted.status == 0 && faulted.stdout == undisturbed.stdout, "\(faulted)\n\(cluster.coordinator.stderr)")
        #expect(faulted.seconds > 1 && !cluster.coordinator.stderr.contains("worker lost"), "\(cluster.coordinator.stderr)")
    }

    @Test(.enabled(if: netemAvailable, "this kernel has no tc netem (sch_netem): delay and loss cannot be made here"))
    func delayAndLossSlowTracesDownButTheyFinishCorrect() throws {
        let cluster = try Cluster(serving: 2, workerTimeout: 6)
        defer { cluster.stop() }
        let undisturbed = try cluster.run(Self.script)
        for i in 0..<2 {
            #expect(Hosts.inHost(cluster.hosts.worker(i), ["tc", "qdisc", "add", "dev", cluster.hosts.workerLink(i), "root", "netem", "delay", "100ms", "loss", "5%"]))
        }
        let slowed = try cluster.run(Self.script, timeout: 300)
        #expect(slowed.status == 0 && slowed.stdout == undisturbed.stdout, "\(slowed)")
        #expect(slowed.seconds > undisturbed.seconds)
        print("netem 100 ms delay + 5 % loss on both worker links: \(String(format: "%.2f", 40 / slowed.seconds)) tokens/s (undisturbed \(String(format: "%.2f", 40 / undisturbed.seconds)) tokens/s, whole client process)")
    }

    @Test func aKilledCoordinatorEndsEveryProcessWithinItsDeadline() throws {
        let cluster = try Cluster(serving: 2, registerTimeout: 4)
        defer { cluster.stop() }
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("net-\(UUID().uuidString).out")
        // A long trace, frozen workers so it is surely in flight, then the coordinator dies.
        let client = try cluster.client(Self.script.replacingOccurrences(of: "max_new_tokens=40", with: "max_new_tokens=100"), output: output)
        _ = client.waitForStderr("step 2:", seconds: 30)
        for w in cluster.workers { w.signal(SIGSTOP) }
        cluster.coordinator.signal(SIGKILL)
        let killed = Date()
        #expect(client.wait(seconds: 10), "the client still runs 10 s after the coordinator died")
        #expect(client.process.terminationStatus == 1 && client.stderr.contains("stopped answering"), "\(client.stderr)")
        for w in cluster.workers { w.signal(SIGCONT) }
        // Workers: 3 s of silence, then register again, then exit after --register-timeout 4 s.
        for w in cluster.workers {
            #expect(w.wait(seconds: 15), "a worker still runs \(Int(Date().timeIntervalSince(killed))) s after the coordinator died")
        }
    }
}
