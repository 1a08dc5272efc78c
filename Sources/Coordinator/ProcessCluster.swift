import Engine
import Foundation
import Logging
import Wire

/// A coordinator on a thread of this process and N worker processes on this machine: what
/// `nnsight run --workers N` starts, uses and stops.
///
/// ```swift
/// let cluster = try ProcessCluster(model: dir, workers: 2, workerExecutable: path)
/// let model = try LanguageModel.connect(cluster.endpoint, model: dir)
/// ...
/// cluster.stop()
/// ```
public final class ProcessCluster: @unchecked Sendable {
    public let endpoint: String
    public private(set) var processes: [Process] = []
    private let state = State()
    /// Submissions clients made to this cluster's coordinator (a trace, or a whole session, each).
    public var submissions: Int { Int(metrics.totals.submitted) }
    /// The coordinator's metrics (this process serves no HTTP for them).
    private let metrics = CoordinatorMetrics()
    /// Each worker's passes, from its heartbeats (about once a second).
    public let statistics = StageStatistics()
    /// With `curve`: a client's keys (its keypair, authorized by the coordinator, and the
    /// coordinator's public key), for `LanguageModel.connect(endpoint, model:, keys:)`.
    public private(set) var clientKeys: KeyDirectory?
    /// The temporary key directories `curve` made (removed by `stop`).
    private var keyRoot: String?
    /// Starts worker process `w` (a spare when the flag is set).
    private var launchWorker: (Int, Bool) throws -> Process = { _, _ in throw TraceError.transport("no cluster") }

    /// Shared with the coordinator's thread.
    final class State: @unchecked Sendable {
        let lock = NSLock()
        var stopping = false
        var ready = false
        let finished = DispatchSemaphore(value: 0)
    }

    /// The CPUs each of `workers` workers with `threads` threads is pinned to, from the CPUs
    /// this process may use. Workers that fit take disjoint CPUs; workers that each use all of
    /// them all get the whole list, so their main threads (which pass the activations on) share
    /// its first CPU and only one stage computes at a time anyway; in between, CPUs are dealt in
    /// turn.
    ///
    /// ```swift
    /// ProcessCluster.cpuLists(workers: 2, threads: 1, cpus: [0, 1])  // [[0], [1]]
    /// ProcessCluster.cpuLists(workers: 3, threads: 2, cpus: [0, 1])  // [[0, 1], [0, 1], [0, 1]]
    /// ```
    public static func cpuLists(workers: Int, threads: Int, cpus: [Int]) -> [[Int]] {
        guard !cpus.isEmpty else { return Array(repeating: [], count: workers) }
        let threads = max(1, min(threads, cpus.count))
        return (0..<workers).map { w in
            let start = threads == cpus.count ? 0 : (w * threads) % cpus.count
            return (0..<threads).map { cpus[(start + $0) % cpus.count] }
        }
    }

    /// Starts the coordinator and `workers` worker processes and waits until every stage is ready.
    /// `transport` is "tcp" (127.0.0.1) or "ipc".
    /// `workerArguments` go to every worker (`--dtype bf16`, `--max-batch 4`, ...); `workerTimeoutMs`
    /// is `nnsight serve --worker-timeout` (a worker sends no heartbeat during a pass).
    /// `pinWorkers` places each worker on CPUs of its own (see `cpuLists`): on this machine kind
    /// it made 3 stages' tokens 1.5-3 % faster, since a hop's wake-ups stay on one CPU.
    /// `curve` makes keys for every party (`clientKeys` for the client) and runs CURVE on every
    /// connection; `standby` starts that many spares once the stages are served; `replayTimeoutMs`
    /// is `nnsight serve --replay-timeout` (0: a lost worker's traces end at once).
    public init(model: String, workers: Int, workerExecutable: URL, transport: String = "tcp",
                split: [Int]? = nil, threadsPerWorker: Int? = nil, pinWorkers: Bool = true,
                workerArguments: [String] = [], workerTimeoutMs: Int? = nil, readyTimeoutSeconds: Int = 60,
                curve: Bool = false, standby: Int = 0, replayTimeoutMs: Int = 30_000) throws {
        let tag = "\(getpid())-\(UUID().uuidString.prefix(8))"
        var options = ClusterCoordinator.Options(model: model, workers: workers)
        var workerKeys: [String] = []
        if curve {
            // Keys as an operator makes them: one directory per party, the coordinator's
            // authorized/ holding the workers' and the client's public keys.
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("nnsight-keys-\(tag)").path
            keyRoot = root
            let workerNames = (0..<workers).map { "worker-\($0)" }
            try KeyDirectory.makeCluster(at: root, parties: ["client"] + workerNames)
            workerKeys = workerNames.map { root + "/" + $0 }
            options.keys = try KeyDirectory.load(root + "/coordinator")
            clientKeys = try KeyDirectory.load(root + "/client")
        }
        options.split = split
        if let workerTimeoutMs { options.workerTimeoutMs = workerTimeoutMs }
        options.replayTimeoutMs = replayTimeoutMs
        options.metrics = metrics
        options.statistics = statistics
        if transport == "ipc" {
            options.listen = "ipc:///tmp/nnsight-\(tag)-control"
            options.results = "ipc:///tmp/nnsight-\(tag)-results"
        }
        let coordinatorOptions = options
        let started = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var outcome: Result<String, Error> = .failure(TraceError.transport("the coordinator did not start"))
        let state = self.state
        let thread = Thread {
            do {
                let coordinator = try ClusterCoordinator(coordinatorOptions, log: Logger(label: "nnsight.coordinator"))
                outcome = .success(coordinator.endpoint)
                started.signal()
                try coordinator.serve {
                    state.lock.lock()
                    defer { state.lock.unlock() }
                    state.ready = state.ready || coordinator.isReady
                    return state.stopping
                }
            } catch {
                outcome = .failure(error)
                started.signal()
            }
            state.finished.signal()
        }
        thread.name = "nnsight-coordinator"
        thread.start()
        started.wait()
        endpoint = try outcome.get()

        let cpus = ComputePool.allowedCPUs()
        let cpuLists = pinWorkers ? Self.cpuLists(workers: workers, threads: threadsPerWorker ?? max(1, cpus.count / workers), cpus: cpus) : nil
        // Spares run like the others, on the CPUs of the stage they may take over (unknown: the first's).
        launchWorker = { [endpoint] w, standby in
            let process = Process()
            process.executableURL = workerExecutable
            var arguments = ["--connect", endpoint, "--model", model, "--id", "worker-\(w)-\(tag)", "--share", String(workers)]
            if transport == "ipc" { arguments += ["--bind", "ipc:///tmp/nnsight-\(tag)-worker-\(w)"] }
            if let threadsPerWorker { arguments += ["--threads", String(threadsPerWorker)] }
            if let cpus = cpuLists?[w % workers] { arguments += ["--cpus", cpus.map(String.init).joined(separator: ",")] }
            if curve { arguments += ["--keys", workerKeys[w % workers]] }
            if standby { arguments += ["--standby"] }
            process.arguments = arguments + workerArguments
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            return process
        }
        for w in 0..<workers { processes.append(try launchWorker(w, false)) }
        let deadline = Date().addingTimeInterval(Double(readyTimeoutSeconds))
        while !isReady {
            guard Date() < deadline else {
                stop()
                throw TraceError.transport("the \(workers) workers did not become ready within \(readyTimeoutSeconds) s")
            }
            Thread.sleep(forTimeInterval: 0.02)
        }
        // Spares after the stages are served: a spare registering first would take a range.
        for _ in 0..<standby { try startStandby() }
    }

    /// Starts one more worker process as a spare (`nnsight-worker --standby`): it takes over the
    /// first layer range that becomes free. Returns it (also in `processes`).
    @discardableResult
    public func startStandby() throws -> Process {
        let process = try launchWorker(processes.count, true)
        processes.append(process)
        return process
    }

    public var isReady: Bool {
        state.lock.lock()
        defer { state.lock.unlock() }
        return state.ready
    }

    /// Stops the coordinator (which tells the workers to exit) and waits for the processes.
    public func stop() {
        state.lock.lock()
        let already = state.stopping
        state.stopping = true
        state.lock.unlock()
        guard !already else { return }
        _ = state.finished.wait(timeout: .now() + 10)
        for process in processes {
            let deadline = Date().addingTimeInterval(5)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.02) }
            // SIGKILL: a child may have inherited a signal mask that blocks SIGTERM.
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            process.waitUntilExit()
        }
        if let keyRoot { try? FileManager.default.removeItem(atPath: keyRoot) }
    }

    deinit { stop() }
}
