import Engine
import Foundation
import Graph
import GraphWire
import Logging
import Synchronization
import Wire

/// What each worker's stage has run, as its latest heartbeat reported it (by worker id);
/// readable from any thread.
public final class StageStatistics: @unchecked Sendable {
    public struct Passes: Sendable, Equatable {
        /// Forward passes, the trace steps they ran, and the most steps one pass ran.
        public var passes: UInt64, steps: UInt64, largest: Int
    }
    private let lock = NSLock()
    private var byWorker: [String: Passes] = [:]
    private var servingByStage: [Int: String] = [:]
    public init() {}
    public var workers: [String: Passes] { lock.withLock { byWorker } }
    /// The worker assigned to each stage now (stages without one are missing).
    public var serving: [Int: String] { lock.withLock { servingByStage } }
    func record(_ worker: String, _ passes: Passes) { lock.withLock { byWorker[worker] = passes } }
    func assign(stage: Int, to worker: String?) { lock.withLock { servingByStage[stage] = worker } }
}

/// The coordinator of a cluster of worker processes: registers workers, splits the layers
/// across them, accepts traces from clients over ZeroMQ and starts them; the stages form a ring
/// (the last samples and starts each next step at the first), and the coordinator follows every
/// trace's steps, stop and liveness, many traces in flight at once (stage 0 works on one trace's
/// step while the last stage works on another's). Saved values stream to the client as they arrive.
///
/// All sockets belong to the thread that calls `serve`.
///
/// ```swift
/// let coordinator = try ClusterCoordinator(options)      // binds, on the serving thread
/// print(coordinator.endpoint)                           // workers and clients connect here
/// try coordinator.serve()
/// ```
public final class ClusterCoordinator {
    public struct Options: Sendable {
        /// Control endpoint: workers register here, clients submit traces here.
        public var listen = "tcp://127.0.0.1:*"
        /// Where workers send saves, step results and errors.
        public var results = "tcp://127.0.0.1:*"
        public var model: String
        /// Workers to wait for before serving; layers are split across them by the weights each
        /// stage reads per step (`LocalCluster.split(config:stages:)`) unless `split`.
        public var workers: Int
        /// Layer boundaries, e.g. [4, 8] for 12 layers on 3 workers.
        public var split: [Int]?
        /// A worker silent for this long is dead.
        public var workerTimeoutMs = 3000
        /// A worker loading its weights (assigned, not yet ready) cannot send heartbeats: it has
        /// this long (GPT-2 large's 3 GB take about 8 s here).
        public var loadTimeoutMs = 120_000
        /// A trace's default deadline.
        public var traceTimeoutMs = 300_000
        /// A trace whose worker dies waits this long for a replacement (a spare, or the worker
        /// registering again) and is then replayed from its start on the new stage set, the client
        /// seeing only a delay; 0 ends it at once with the error.
        public var replayTimeoutMs = 30_000
        /// The model's config when it is not read from `model` (stages in memory: local mode).
        public var config: GPT2Config?
        /// Called once, on the serving thread, when every stage has a ready worker.
        public var onReady: (@Sendable () -> Void)?
        /// Where workers' pass statistics go (from their heartbeats).
        public var statistics = StageStatistics()
        /// CURVE (`--keys DIR`): this coordinator's keypair; only the clients and workers whose
        /// public keys are in `authorized/` get past the handshake.
        public var keys: KeyDirectory?
        /// Prometheus metrics of this coordinator (`--metrics ADDR` serves `metrics.registry`).
        public var metrics = CoordinatorMetrics()
        /// Bytes that may wait for one client that reads slower than its traces produce
        /// (`--client-buffer-mb`); past it the trace ends with ERROR_UNDELIVERABLE. Nothing is
        /// dropped below it.
        public var clientBufferBytes = 1 << 30
        /// What one trace may ask for (values, batch, KV cache, ops of constants).
        public var budget = TraceBudget()

        public init(model: String, workers: Int) {
            self.model = model
            self.workers = workers
        }
    }

    struct WorkerInfo {
        let id: String
        let address: String
        let push: ZMQSocket
        var stage: Int?
        var ready = false
        /// It acknowledged an assignment that gave it its next stage's address.
        var linked = false
        var lastSeen = Date()
        /// Its public key, from the CURVE handshake (nil without keys).
        var publicKey: String?
        /// Compute threads, from its Hello.
        var threads = 0
        /// Its latest heartbeat (traces held, KV-cache bytes, passes).
        var beat = Nnsight_V1_Heartbeat()
        /// Its process's Hello incarnation.
        var incarnation: UInt64 = 0
        /// When it was given its stage: it must be ready within the load timeout of this,
        /// whatever else it says meanwhile.
        var assignedAt = Date()
    }

    final class Active {
        /// The current run of the trace (a replay starts a new one, under a new id).
        var session: TraceSession
        let client: Data
        let clientRequest: UInt64
        let deadline: Date
        var waitingForSaves = false
        /// Stopped-step reports that arrived before the report of the step before them.
        var early: [UInt32: Nnsight_V1_StepResult] = [:]
        /// The session this trace belongs to, if any.
        let run: SessionRun?
        /// What the client already has, so that a replay delivers nothing twice.
        var deliveredSaves: Set<DeliveredSave> = []
        var deliveredSteps = 0
        /// Numbered messages sent to the client about this submission (the last one's number).
        var sent: UInt64 = 0
        /// Times it was replayed after losing a worker.
        var replays = 0
        /// When the submission arrived, and when its latest step reached the client (uptime ns).
        let started = DispatchTime.now().uptimeNanoseconds
        var lastStep: UInt64 = 0
        init(session: TraceSession, client: Data, clientRequest: UInt64, deadline: Date, run: SessionRun?) {
            self.session = session
            self.client = client
            self.clientRequest = clientRequest
            self.deadline = deadline
            self.run = run
        }
    }

    struct DeliveredSave: Hashable {
        let trace: UInt32, saveID: UInt32, step: UInt32
    }

    /// A session's traces, run back to back; the values later traces use stay here.
    final class SessionRun {
        let graphs: [TraceGraph]
        var index = 0
        /// (trace, save id) -> value, for the saves a later trace uses.
        var values: [SessionKey: Tensor] = [:]
        let needed: Set<SessionKey>
        init(graphs: [TraceGraph]) {
            self.graphs = graphs
            var needed = Set<SessionKey>()
            for graph in graphs {
                for node in graph.nodes { if case let .external(trace, saveID) = node.kind { needed.insert(SessionKey(trace: trace, saveID: saveID)) } }
            }
            self.needed = needed
        }

        /// The current trace with the values of earlier ones put in as constants.
        func current() throws(TraceError) -> TraceGraph { try Self.resolved(graphs[index], index: index, values: values) }

        /// Trace `index` of a session with the values of earlier ones (`values`) put in as constants.
        static func resolved(_ graph: TraceGraph, index: Int, values: [SessionKey: Tensor]) throws(TraceError) -> TraceGraph {
            var graph = graph
            for i in graph.nodes.indices {
                guard case let .external(trace, saveID) = graph.nodes[i].kind else { continue }
                guard trace < index else {
                    throw TraceError(.invalidGraph, "trace \(index) of the session uses a value of trace \(trace), which does not run before it").at(graph.nodes[i])
                }
                guard let value = values[SessionKey(trace: trace, saveID: saveID)] else {
                    throw TraceError(.runtime, "trace \(index) of the session uses a value that trace \(trace) did not produce (its step was not reached or its branch did not run)").at(graph.nodes[i])
                }
                graph.nodes[i].kind = .constant(value)
            }
            return graph
        }
    }

    struct SessionKey: Hashable {
        let trace: Int
        let saveID: UInt32
    }

    public let options: Options
    public let config: GPT2Config
    public let stages: [Range<Int>]
    let context: ZMQContext
    let control: ZMQSocket
    let results: ZMQSocket
    /// The control endpoint actually bound.
    public let endpoint: String
    public let resultsEndpoint: String
    let log: Logger

    private var workers: [String: WorkerInfo] = [:]
    /// The worker serving each stage, once assigned.
    private var slots: [String?]
    private var traces: [UInt64: Active] = [:]
    /// Traces whose worker died, waiting for the stages to be served again (oldest first): since
    /// when, and the error they end with if no replacement comes.
    private var suspended: [(active: Active, since: Date, error: Envelope)] = []
    /// Spares (`--standby`) waiting for a free layer range: their Hello and key, by id.
    private var standbys: [String: (hello: Nnsight_V1_Hello, key: String?, lastSeen: Date)] = [:]
    /// Workers that were given a stage and never became ready: other spares come first.
    private var neverReady: Set<String> = []
    private var announcedReady = false
    /// What waits for a peer whose pipe is full (nothing is dropped at the high-water mark).
    private var outbox: PeerOutbox
    /// What waits for a worker's activation port (until it has room, or the worker is lost).
    private var workerOutbox = PeerOutbox(limitBytes: .max)
    /// Peers found disconnected while sending: their traces are cancelled after this turn.
    private var gone: Set<Data> = []
    /// Large messages read off the serving loop, and how many are still being read.
    private let prepared = Mailbox<Prepared>()
    /// Large messages being read off the loop, by sender (their request ids are known only once read).
    private var preparingPeers: [Data: Int] = [:]
    /// Sessions whose next trace compiles off the loop, by token; and where the results come.
    private var compiling: [UInt64: Active] = [:]
    private let compiledNext = Mailbox<CompiledNext>()
    private var lastHousekeeping = Date()
    private let startedAt = Date()
    /// Decides CURVE handshakes for this coordinator's sockets (with `options.keys`).
    private let zap: ZAPHandler?
    /// Handshakes that failed before the ZAP handler saw them (a peer without CURVE at all).
    private var handshakeMonitors: [(socket: String, monitor: HandshakeMonitor)] = []

    /// - Parameter context: the ZeroMQ context (shared with in-process stages and clients for `inproc://`).
    public init(_ options: Options, context: ZMQContext = ZMQContext(), log: Logger = Logger(label: "nnsight.coordinator")) throws {
        self.options = options
        self.context = context
        self.log = log
        config = try options.config ?? GPT2Config.load(directory: options.model)
        let bounds = [0] + (options.split ?? []) + [config.nLayer]
        if let split = options.split {
            guard split.count == options.workers - 1, zip(bounds, bounds.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw TraceError(.invalidGraph, "--split \(split) does not cut \(config.nLayer) layers into \(options.workers) ranges")
            }
            stages = zip(bounds, bounds.dropFirst()).map { $0..<$1 }
        } else {
            stages = LocalCluster.split(config: config, stages: options.workers)
        }
        slots = [String?](repeating: nil, count: stages.count)
        outbox = PeerOutbox(limitBytes: options.clientBufferBytes)
        if let keys = options.keys {
            // Before anything binds: a CURVE socket with no handler would let every key in.
            zap = try ZAPHandler(context: context, accepted: Set(keys.authorized.values)) { [log] refusal in
                log.warning("handshake refused", metadata: ["peer": "\(refusal)"])
            }
        } else {
            zap = nil
        }
        control = try context.socket(.router)
        try control.setMaxMessageSize(WireProtocol.defaultMaxMessageBytes)
        try control.reportUnroutable()
        if let keys = options.keys { try control.makeCurveServer(keys.own) }
        try control.bind(options.listen)
        endpoint = control.lastEndpoint
        results = try context.socket(.pull)
        try results.setMaxMessageSize(WireProtocol.defaultMaxMessageBytes)
        if let keys = options.keys { try results.makeCurveServer(keys.own) }
        try results.bind(options.results)
        resultsEndpoint = results.lastEndpoint
        if options.keys != nil {
            handshakeMonitors = [("control", try control.monitorHandshakes()), ("results", try results.monitorHandshakes())]
        }
        options.metrics.describe(stages: stages)
    }

    /// Whether every stage has a ready worker.
    public var isReady: Bool { slots.allSatisfy { $0.flatMap { workers[$0].map { $0.ready && $0.linked } } ?? false } }

    /// Serves until `shouldStop`; then tells every worker to shut down.
    public func serve(shouldStop: () -> Bool = { false }) throws {
        defer { shutdownWorkers() }
        while !shouldStop() {
            options.metrics.process.liveness.tick()
            // Short waits while work off the loop or a slow client's results are pending.
            let pending = !preparingPeers.isEmpty || !compiling.isEmpty || outbox.waitingBytes > 0 || workerOutbox.waitingBytes > 0
            let ready = try ZMQSocket.poll([control, results], timeoutMs: pending ? 2 : 50)
            handlePrepared()
            // Everything that has arrived is handled before liveness is judged: after a stall
            // the workers' heartbeats are waiting here, and they are alive.
            var handled = 0
            while ready[0], handled < Self.receiveLimit, let frames = try control.receive(timeoutMs: 0) {
                options.metrics.process.countReceived(frames)
                try handleControl(frames)
                handled += 1
            }
            handled = 0
            while ready[1], handled < Self.receiveLimit, let frames = try results.receive(timeoutMs: 0) {
                options.metrics.process.countReceived(frames)
                try handleResult(frames.last ?? Data())
                handled += 1
            }
            flushOutbox()
            try housekeeping()
        }
        flushOutbox()
    }

    private func send(to worker: WorkerInfo, _ envelope: Envelope) {
        guard let frame = try? Framing.encode(envelope) else { return }
        send(to: worker, frame: frame)
    }

    /// Sends to a worker's activation port without blocking: a stopped worker whose pipe is full
    /// must not stop the serving loop (which then could not even find it lost). What does not
    /// fit waits, in order, until it has room or is lost.
    private func send(to worker: WorkerInfo, frame: Data) {
        _ = workerOutbox.send(frame, to: Data(worker.id.utf8), exempt: true) { attemptWorker($0, $1) }
    }

    private func attemptWorker(_ peer: Data, _ frame: Data) -> PeerOutbox.Attempt {
        guard let worker = workers[String(decoding: peer, as: UTF8.self)] else { return .unreachable }
        do throws(ZMQError) { try worker.push.send([frame], dontWait: true) } catch { return .full }
        options.metrics.process.countSent(frame)
        return .sent
    }

    /// One non-blocking send on the control ROUTER (ROUTER_MANDATORY: a full pipe or a gone peer
    /// is an error, not a silent drop).
    private func attempt(_ peer: Data, _ frame: Data) -> PeerOutbox.Attempt {
        do throws(ZMQError) {
            try control.send([peer, frame], dontWait: true)
        } catch {
            return error.isUnreachable ? .unreachable : .full
        }
        options.metrics.process.countSent(frame)
        return .sent
    }

    /// Sends `envelope` to a peer, in order after what already waits for it.
    private func reply(_ peer: Data, _ envelope: Envelope) {
        do throws(WireError) { _ = send(try Framing.encode(envelope), to: peer, exempt: true) } catch {
            log.error("a message could not be encoded", metadata: ["peer": "\(String(decoding: peer, as: UTF8.self))", "error": "\(error)"])
        }
    }

    private func send(_ frame: Data, to peer: Data, exempt: Bool) -> PeerOutbox.Outcome {
        let outcome = outbox.send(frame, to: peer, exempt: exempt) { attempt($0, $1) }
        if outcome == .unreachable { gone.insert(peer) }
        return outcome
    }

    /// Sends the client one numbered message about its submission; nil when it went (or waits),
    /// else why it cannot go, and the caller ends the trace with that reason (`undeliverable`).
    /// Final messages (`exempt`) wait past the client's buffer limit: they are small and must arrive.
    private func deliver(_ active: Active, _ envelope: Envelope, exempt: Bool = false) -> String? {
        var envelope = envelope
        envelope.requestID = active.clientRequest
        envelope.sequence = active.sent + 1
        let frame: Data
        do throws(WireError) { frame = try Framing.encode(envelope) } catch {
            return "\(error)"
        }
        guard send(frame, to: active.client, exempt: exempt) != .overBudget else {
            return "the client is not reading: \(outbox.waiting(for: active.client) >> 20) MB of its results wait to be sent, its buffer's limit (--client-buffer-mb \(options.clientBufferBytes >> 20))"
        }
        active.sent += 1
        return nil
    }

    /// Ends a trace whose next message could not be delivered, saying what and why.
    private func undeliverable(_ active: Active, _ what: String, _ why: String) {
        finish(active.session.id, error: error(.errorUndeliverable, "\(what) could not be sent: \(why); the trace was ended",
                                               requestId: active.clientRequest, step: UInt32(active.session.steps)))
    }

    /// Sends what waits for peers whose pipes had no room; cancels the traces of clients that
    /// disconnected.
    private func flushOutbox() {
        _ = workerOutbox.flush { attemptWorker($0, $1) }
        gone.formUnion(outbox.flush { attempt($0, $1) })
        var handled = Set<Data>()
        while let peer = gone.popFirst() {
            outbox.drop(peer)
            // (cancelling answers the peer, which finds it gone again: once is enough)
            guard handled.insert(peer).inserted, workers[String(decoding: peer, as: UTF8.self)] == nil else { continue }
            if cancel(client: peer, request: nil, "the client disconnected") {
                log.info("client disconnected; its traces were cancelled", metadata: ["client": "\(String(decoding: peer, as: UTF8.self))"])
            }
        }
        for peer in handled { outbox.drop(peer) }
        options.metrics.clientBufferBytes.set(to: Double(outbox.waitingBytes))
    }

    private func error(_ code: WireErrorCode, _ message: String, requestId: UInt64 = 0, worker: String = "", step: UInt32? = nil) -> Envelope {
        Framing.envelope(requestId: requestId) {
            $0.error = .with { $0.code = code; $0.message = message; $0.worker = worker; if let step { $0.step = step } }
        }
    }

    private func error(_ error: TraceError, requestId: UInt64) -> Envelope {
        Framing.envelope(requestId: requestId) { $0.error = error.wire }
    }

    // MARK: - control: workers and clients

    private func handleControl(_ frames: [Data]) throws {
        guard frames.count == 2 else {
            if let peer = frames.first { reply(peer, WireError.malformed("expected one payload frame").reply()) }
            return
        }
        let (peer, frame) = (frames[0], frames[1])
        if frame.count > Self.inlineDecodeBytes {
            // A large message (a big trace) is read and compiled off the serving loop, which goes
            // on answering heartbeats and moving other traces meanwhile.
            let (config, stages, budget, mailbox) = (config, stages, options.budget, prepared)
            preparingPeers[peer, default: 0] += 1
            Self.preparation.async {
                let decoded = Result { () throws(WireError) in try Framing.decode(frame) }
                let submission = try? decoded.get().body.flatMap { Self.prepare($0, config: config, stages: stages, budget: budget) }
                mailbox.post(.init(peer: peer, envelope: decoded, submission: submission))
            }
            return
        }
        handleControl(peer: peer, Result { () throws(WireError) in try Framing.decode(frame) }, prepared: nil)
    }

    /// Messages larger than this are read off the serving loop.
    static let inlineDecodeBytes = 256 << 10
    /// Where large messages are read and their traces compiled, in the order they came.
    private static let preparation = DispatchQueue(label: "nnsight.coordinator.preparation")

    /// A control message read off the serving loop, and the submission it carries.
    struct Prepared: Sendable {
        let peer: Data
        let envelope: Result<Envelope, WireError>
        let submission: PreparedSubmission?
    }

    /// A session's later trace of more nodes than this compiles off the serving loop.
    static let inlineCompileNodes = 4096

    /// A session trace compiled off the loop, by the token its session waits under.
    struct CompiledNext: Sendable {
        let token: UInt64
        let graph: TraceGraph
        let result: Result<CompiledTrace, TraceError>
    }

    /// Compiles a session's next trace beside the serving loop; the session waits in `compiling`.
    private func compileOffLoop(_ graph: TraceGraph, for active: Active) {
        let token = freshTraceId()
        compiling[token] = active
        let compiler = GraphCompiler(config: config, stages: stages, budget: options.budget), mailbox = compiledNext
        Self.preparation.async {
            mailbox.post(CompiledNext(token: token, graph: graph, result: Result { () throws(TraceError) in try compiler.compile(graph) }))
        }
    }

    private func handlePrepared() {
        for item in compiledNext.drain() {
            guard let active = compiling.removeValue(forKey: item.token) else { continue }  // cancelled meanwhile
            switch item.result {
            case let .success(compiled):
                active.session = newSession(item.graph, compiled: compiled)
                launch(active)
            case let .failure(error):
                var e = error
                e.message = "trace \(active.run?.index ?? 0) of the session: " + e.message
                fail(active, self.error(e, requestId: active.clientRequest))
            }
        }
        for item in prepared.drain() {
            preparingPeers[item.peer]! -= 1
            if preparingPeers[item.peer] == 0 { preparingPeers[item.peer] = nil }
            handleControl(peer: item.peer, item.envelope, prepared: item.submission)
        }
    }

    private func handleControl(peer: Data, _ decoded: Result<Envelope, WireError>, prepared submission: PreparedSubmission?) {
        let envelope: Envelope
        switch decoded {
        case let .success(e): envelope = e
        case let .failure(error):
            log.warning("refused a message", metadata: ["peer": "\(String(decoding: peer, as: UTF8.self))", "error": "\(error)"])
            reply(peer, error.reply())
            return
        }
        let peerId = String(decoding: peer, as: UTF8.self)
        if var worker = workers[peerId] {
            // Heartbeats come every second: a longer silence is intervals missed (counted when it ends).
            let silence = Date().timeIntervalSince(worker.lastSeen)
            if worker.ready, silence >= 2 { options.metrics.process.heartbeatsMissed.increment(by: Int64(silence) - 1) }
            worker.lastSeen = Date()
            workers[peerId] = worker
        }
        switch envelope.body {
        case let .hello(hello)?: register(hello, peer: peer, key: control.lastSenderKey)
        case let .assignment(a)?:
            // A worker's ready acknowledgement.
            if var worker = workers[peerId], let stage = worker.stage, stage == Int(a.stage) {
                let wasReady = worker.ready
                worker.ready = true
                worker.linked = !a.nextAddress.isEmpty
                workers[peerId] = worker
                // Under CURVE the previous stage may connect to this one now.
                if !wasReady, options.keys != nil, slots.allSatisfy({ $0 != nil }) { assign(stage: (stage + slots.count - 1) % slots.count) }
                guard worker.linked else { break }
                log.info("stage ready", metadata: ["worker": "\(peerId)", "layers": "\(a.layerStart)..<\(a.layerEnd)"])
                if isReady, !announcedReady {
                    announcedReady = true
                    options.onReady?()
                }
            }
        case let .heartbeat(beat)?:
            if workers[peerId] != nil {
                workers[peerId]!.beat = beat
                options.statistics.record(peerId, .init(passes: beat.passes, steps: beat.steps, largest: Int(beat.largestPass)))
            } else if beat.awaiting, !holds(client: peer, request: envelope.requestID) {
                // A client waiting for a submission this coordinator does not have (it restarted
                // since): an error at once, not a wait for the trace's deadline.
                reply(peer, error(.errorWorkerLost, "the coordinator at \(endpoint) has no trace for this request: it restarted, or it never received the submission; submit it again",
                                  requestId: envelope.requestID))
                return
            } else if beat.sender != "client" {
                // A worker this coordinator dropped (or never knew, after a restart): it must
                // register again rather than serve a stage that is no longer its own.
                reply(peer, error(.errorWorkerLost, "worker \(peerId) is not registered here (dropped, or the coordinator restarted): register again", worker: peerId))
                return
            }
            // Clients and workers both learn from the answer that the coordinator is alive.
            reply(peer, Framing.envelope(requestId: envelope.requestID) {
                $0.heartbeat = .with { $0.sentUnixMs = UInt64(Date().timeIntervalSince1970 * 1000); $0.sender = "coordinator" }
            })
        case .statusRequest?: reply(peer, Framing.envelope(requestId: envelope.requestID) { $0.status = status() })
        case .submit?, .submitSession?:
            submit(submission ?? Self.prepare(envelope.body!, config: config, stages: stages, budget: options.budget)!, client: peer, request: envelope.requestID)
        case .cancel?:
            cancel(client: peer, request: envelope.requestID, "cancelled by the client")
        default:
            reply(peer, WireError.unknownMessage.reply(requestId: envelope.requestID))
        }
    }

    /// Whether a submission of `client` is held here: running, suspended, compiling, or being read.
    private func holds(client: Data, request: UInt64) -> Bool {
        preparingPeers[client] != nil || !submissions(of: client, request: request).isEmpty
    }

    /// Where a submission waits or runs: one place each.
    private enum Held {
        case running(UInt64), suspended(Int), compiling(UInt64)
    }

    /// The submissions of `client` (`request`, or all of them), wherever they are.
    private func submissions(of client: Data, request: UInt64?) -> [(Held, Active)] {
        func matches(_ a: Active) -> Bool { a.client == client && (request == nil || a.clientRequest == request) }
        return traces.filter { matches($0.value) }.map { (.running($0.key), $0.value) }
            + suspended.indices.filter { matches(suspended[$0].active) }.map { (.suspended($0), suspended[$0].active) }
            + compiling.filter { matches($0.value) }.map { (.compiling($0.key), $0.value) }
    }

    /// Ends the submissions of `client` (`request`, or all) with `why`, counted as cancelled.
    /// Returns whether there were any.
    @discardableResult
    private func cancel(client: Data, request: UInt64?, _ why: String) -> Bool {
        let found = submissions(of: client, request: request)
        for (held, active) in found {
            let refusal = error(.errorRefused, why, requestId: active.clientRequest)
            switch held {
            case let .running(id): finish(id, error: refusal, reason: "cancelled")
            case .suspended: fail(active, refusal, reason: "cancelled")
            case let .compiling(token):
                compiling[token] = nil
                fail(active, refusal, reason: "cancelled")
            }
        }
        suspended.removeAll { entry in found.contains { $0.1 === entry.active } }
        return !found.isEmpty
    }

    private func register(_ hello: Nnsight_V1_Hello, peer: Data, key: String?) {
        let id = String(decoding: peer, as: UTF8.self)
        guard hello.model == config.architectureId else {
            reply(peer, error(.errorModelMismatch, "worker \(id) serves '\(hello.model)', this cluster serves '\(config.architectureId)'", worker: id))
            return
        }
        if let existing = workers[id], existing.stage != nil {
            // Said again while its assignment is on its way: a repeat. From a worker that was
            // serving, or from a new process under the same id (restarted by systemd within a
            // second): its stage's state is gone, so it is lost (its traces are replayed) and
            // registers afresh.
            guard existing.ready || existing.incarnation != hello.incarnation else { return }
            log.warning("worker registered again while serving its stage (restarted, or it lost this coordinator)",
                        metadata: ["worker": "\(id)", "restarted": "\(existing.incarnation != hello.incarnation)"])
            workerLost(id, existing)
        }
        guard let free = slots.firstIndex(where: { $0 == nil }) else {
            if hello.standby {
                // A spare waits (unanswered: it says Hello again) until a range becomes free.
                if standbys[id] == nil { log.info("spare waiting", metadata: ["worker": "\(id)"]) }
                standbys[id] = (hello, key, Date())
                return
            }
            reply(peer, error(.errorRefused, "every layer range is already served (\(stages.map { "\($0)" }.joined(separator: ", ")))", worker: id))
            return
        }
        if options.keys != nil, key == nil {
            reply(peer, error(.errorRefused, "worker \(id): no CURVE key came with its connection", worker: id))
            return
        }
        guard let push = try? context.push(connectingTo: hello.address, keys: options.keys?.own, serverKey: key ?? "") else {
            reply(peer, error(.errorRefused, "cannot connect to the worker's address \(hello.address)", worker: id))
            return
        }
        workerOutbox.drop(Data(id.utf8))  // (what waited for an earlier process under this id)
        workers[id] = WorkerInfo(id: id, address: hello.address, push: push, stage: free, publicKey: key, threads: Int(hello.threads),
                                 incarnation: hello.incarnation)
        slots[free] = id
        options.statistics.assign(stage: free, to: id)
        log.info("worker registered", metadata: ["worker": "\(id)", "layers": "\(stages[free])"])
        assignStages()
    }

    /// Sends each stage's worker its range and the next stage's address, once all are known
    /// (and again to the previous stage when a replacement arrives).
    private func assignStages() {
        guard slots.allSatisfy({ $0 != nil }) else { return }
        for s in slots.indices { assign(stage: s) }
    }

    /// One stage's assignment. The stages form a ring: the last starts each next step at the
    /// first itself, one hop (and a pass through this loop) less per token than a step started
    /// from here. Under CURVE a stage learns its next stage's address only once that stage has
    /// acknowledged its own assignment, which names the keys it accepts: a connection made
    /// earlier would be refused at the handshake.
    private func assign(stage s: Int) {
        guard let id = slots[s], var worker = workers[id] else { return }
        let nextWorker = slots[(s + 1) % slots.count].flatMap { workers[$0] }
        let previousWorker = slots[(s + slots.count - 1) % slots.count].flatMap { workers[$0] }
        let linked = nextWorker.map { options.keys == nil || $0.ready } ?? false
        let assignment = Nnsight_V1_StageAssignment.with {
            $0.model = config.architectureId
            $0.layerStart = UInt32(stages[s].lowerBound)
            $0.layerEnd = UInt32(stages[s].upperBound)
            $0.stage = UInt32(s)
            $0.stageCount = UInt32(stages.count)
            $0.resultsAddress = resultsEndpoint
            if linked, let nextWorker {
                $0.nextAddress = nextWorker.address
                if let key = nextWorker.publicKey { $0.nextPublicKey = key }
            }
            if let key = previousWorker?.publicKey { $0.senderKeys = [key] }
        }
        worker.linked = false
        workers[id] = worker
        reply(Data(worker.id.utf8), Framing.envelope { $0.assignment = assignment })
    }

    // MARK: - traces

    /// Why this cluster cannot take a submission for `model` now, nil when it can.
    private func refusal(model: String, request: UInt64) -> Envelope? {
        guard model == config.architectureId else {
            return error(.errorModelMismatch, "this cluster serves '\(config.architectureId)', the trace is for '\(model)'", requestId: request)
        }
        guard isReady else {
            let missing = slots.enumerated().filter { $0.element.flatMap { workers[$0]?.ready } != true }.map { "\(stages[$0.offset])" }
            return error(.errorRefused, "layers \(missing.joined(separator: ", ")) are not served yet (waiting for workers)", requestId: request)
        }
        return nil
    }

    /// A submission read and its first trace compiled: what the serving loop starts. Made without
    /// the coordinator's state, so that a large one is made off the serving loop.
    struct PreparedSubmission: Sendable {
        let model: String
        /// The trace, or a session's traces in order.
        let graphs: [TraceGraph]
        let isSession: Bool
        /// The first trace, compiled (a session's later traces compile when their turn comes:
        /// they take values of earlier ones).
        let first: Result<CompiledTrace, TraceError>
    }

    /// Reads a submission's graphs and compiles the first; nil for other messages.
    static func prepare(_ body: Envelope.OneOf_Body, config: GPT2Config, stages: [Range<Int>], budget: TraceBudget) -> PreparedSubmission? {
        let compiler = GraphCompiler(config: config, stages: stages, budget: budget)
        switch body {
        case let .submit(submit):
            do throws(TraceError) {
                let graph = try TraceGraph(wire: submit.graph, layers: config.nLayer)
                return PreparedSubmission(model: submit.model, graphs: [graph], isSession: false, first: Result { () throws(TraceError) in try compiler.compile(graph) })
            } catch {
                return PreparedSubmission(model: submit.model, graphs: [], isSession: false, first: .failure(error))
            }
        case let .submitSession(submit):
            do throws(TraceError) {
                guard !submit.traces.isEmpty else { throw TraceError(.invalidGraph, "the session has no traces") }
                // Every trace is read before any runs: a malformed later one fails the session up front.
                var graphs: [TraceGraph] = []
                for (i, wire) in submit.traces.enumerated() {
                    do throws(TraceError) { graphs.append(try TraceGraph(wire: wire, layers: config.nLayer)) } catch {
                        var e = error
                        e.message = "trace \(i) of the session: " + e.message
                        throw e
                    }
                }
                let first = try SessionRun.resolved(graphs[0], index: 0, values: [:])
                return PreparedSubmission(model: submit.model, graphs: graphs, isSession: true, first: Result { () throws(TraceError) in try compiler.compile(first) })
            } catch {
                return PreparedSubmission(model: submit.model, graphs: [], isSession: true, first: .failure(error))
            }
        default:
            return nil
        }
    }

    /// Starts a prepared submission, or answers why it cannot start.
    private func submit(_ prepared: PreparedSubmission, client: Data, request: UInt64) {
        options.metrics.traceSubmitted()
        if let refused = refusal(model: prepared.model, request: request) { return refuse(client, refused) }
        do throws(TraceError) {
            let compiled = try prepared.first.get()
            try start(prepared.graphs[0], compiled: compiled, client: client, request: request,
                      run: prepared.isSession ? SessionRun(graphs: prepared.graphs) : nil)
        } catch {
            refuse(client, self.error(error, requestId: request))
        }
    }

    /// Answers a submission that never started (refused, or its graph did not compile).
    private func refuse(_ client: Data, _ envelope: Envelope) {
        var envelope = envelope
        envelope.sequence = 1  // the only message about this submission
        reply(client, envelope)
        options.metrics.traceFailed(CoordinatorMetrics.reason(envelope.error.code))
        log.info("trace refused", metadata: ["client": "\(String(decoding: client, as: UTF8.self))", "request": "\(envelope.requestID)",
                                             "outcome": "\(CoordinatorMetrics.reason(envelope.error.code))", "error": "\(envelope.error.message)"])
    }

    /// Starts a compiled trace on the stages.
    private func start(_ graph: TraceGraph, compiled: CompiledTrace, client: Data, request: UInt64, run: SessionRun?) throws(TraceError) {
        let deadline = graph.limits.deadlineUnixMs > 0
            ? Date(timeIntervalSince1970: Double(graph.limits.deadlineUnixMs) / 1000)
            : Date().addingTimeInterval(Double(options.traceTimeoutMs) / 1000)
        let active = Active(session: newSession(graph, compiled: compiled), client: client, clientRequest: request, deadline: deadline, run: run)
        log.info("trace started", metadata: ["trace": "\(Self.hex(active.session.id))", "client": "\(String(decoding: client, as: UTF8.self))",
                                             "request": "\(request)", "max_new_tokens": "\(graph.generation.maxNewTokens)",
                                             "invokes": "\(graph.invokes.count)", "traces": "\(run?.graphs.count ?? 1)"])
        launch(active)
    }

    static func hex(_ id: UInt64) -> String { String(id, radix: 16) }

    /// Counts and logs the end of a submission that started (one line: trace, client, steps, duration, outcome).
    private func ended(_ active: Active, outcome: String) {
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - active.started) / 1e9
        if outcome == "finished" { options.metrics.traceFinished() } else { options.metrics.traceFailed(outcome) }
        options.metrics.traceDuration.record(.nanoseconds(Int64(seconds * 1e9)))
        log.info("trace ended", metadata: ["trace": "\(Self.hex(active.session.id))", "client": "\(String(decoding: active.client, as: UTF8.self))",
                                           "request": "\(active.clientRequest)", "steps": "\(active.deliveredSteps)",
                                           "duration_ms": "\(Int(seconds * 1000))", "outcome": "\(outcome)"])
    }

    /// Ends a started submission with an error: tells the client, counts it by reason (the error's
    /// code unless given), logs it.
    private func fail(_ active: Active, _ envelope: Envelope, reason: String? = nil) {
        _ = deliver(active, envelope, exempt: true)  // (a final message: only an encoding failure stops it)
        ended(active, outcome: reason ?? CoordinatorMetrics.reason(envelope.error.code))
    }

    /// A run of `graph` under a new id.
    private func newSession(_ graph: TraceGraph) throws(TraceError) -> TraceSession {
        newSession(graph, compiled: try GraphCompiler(config: config, stages: stages, budget: options.budget).compile(graph))
    }

    private func newSession(_ graph: TraceGraph, compiled: CompiledTrace) -> TraceSession {
        TraceSession(id: freshTraceId(), compiled: compiled, prompts: graph.invokes, generation: graph.generation)
    }

    /// Unpredictable ids: a peer that can reach a worker's activation port cannot aim forged
    /// activations at the traces that will come next.
    private func freshTraceId() -> UInt64 {
        var id = UInt64.random(in: 1...UInt64.max)
        while traces[id] != nil { id = UInt64.random(in: 1...UInt64.max) }
        return id
    }

    /// Sends a trace's fragments and its first step's input to the stages.
    private func launch(_ active: Active) {
        let session = active.session
        active.waitingForSaves = false
        active.early = [:]
        traces[session.id] = active
        for (s, submit) in session.submits.enumerated() {
            guard let worker = slots[s].flatMap({ workers[$0] }) else { continue }
            send(to: worker, frame: submit)
        }
        if let first = slots[0].flatMap({ workers[$0] }) { send(to: first, session.firstActivations()) }
    }

    /// Runs a suspended trace again from its first step on the stages now serving, under a new
    /// id. Generation is deterministic (greedy, or sampling from the trace's seed), so the run
    /// repeats the lost one exactly; what the client already received is not sent again.
    private func replay(_ active: Active) {
        active.replays += 1
        active.session = active.session.restarted(id: freshTraceId())
        options.metrics.replayed.increment()
        log.info("trace replayed", metadata: ["request": "\(active.clientRequest)", "delivered_steps": "\(active.deliveredSteps)"])
        launch(active)
    }

    /// Passes a saved value on to the client (tagged with its trace within a session), keeping
    /// it here when a later trace of the session uses it.
    /// False when it could not be delivered: the trace has been ended.
    @discardableResult
    private func forward(_ saved: Nnsight_V1_SavedValue, of active: Active) -> Bool {
        var saved = saved
        let key = DeliveredSave(trace: UInt32(active.run?.index ?? 0), saveID: saved.saveID, step: saved.step)
        guard active.deliveredSaves.insert(key).inserted else { return true }  // a replay's repeat
        if let run = active.run {
            saved.trace = UInt32(run.index)
            let key = SessionKey(trace: run.index, saveID: saved.saveID)
            if run.needed.contains(key), !saved.skipped, !saved.append, let value = try? Tensor(wire: saved.value) { run.values[key] = value }
        }
        if let why = deliver(active, Framing.envelope { $0.saved = saved }) {
            undeliverable(active, "the saved value \(saved.saveID) of step \(saved.step)", why)
            return false
        }
        return true
    }

    private func handleResult(_ frame: Data) throws {
        let decoded: Envelope
        do throws(WireError) { decoded = try Framing.decode(frame) } catch {
            // A worker's message that does not validate ends its trace with the reason (the
            // trace would otherwise wait for it until its deadline).
            if let raw = try? Envelope(serializedBytes: frame), let active = traces[raw.requestID] {
                finish(raw.requestID, error: self.error(.errorMalformed, "a worker sent an invalid message: \(error)", requestId: active.clientRequest))
            }
            return
        }
        guard let active = traces[decoded.requestID] else { return }
        let envelope = decoded
        let session = active.session
        switch envelope.body {
        case let .saved(saved)?:
            session.received += 1
            // A skipped save (its guarded branch did not run) is passed on too: the client's
            // program-order output must not wait for it.
            guard forward(saved, of: active) else { return }
        case let .stepResult(result)?:
            // A stopped step is reported by the stage that stopped it, which can overtake the
            // last stage's report of the step before: keep it until its turn.
            if Int(result.step) > session.steps, result.stopped, active.early[result.step] == nil {
                active.early[result.step] = result
                return
            }
            guard Int(result.step) == session.steps else { return }
            var next: Nnsight_V1_StepResult? = result
            while let result = next {
                let goesOn: Bool
                do throws(TraceError) {
                    goesOn = try session.accept(result)
                } catch {
                    finish(envelope.requestID, error: self.error(error, requestId: active.clientRequest))
                    return
                }
                // The last stage has already sent the next step's input to the first (a ring).
                if !goesOn { active.waitingForSaves = true }
                // The client sees each step's tokens as they come (without the carried values),
                // once: a replay's repeated steps are not sent again.
                if Int(result.step) >= active.deliveredSteps {
                    active.deliveredSteps = Int(result.step) + 1
                    let now = DispatchTime.now().uptimeNanoseconds
                    if result.step > 0, active.lastStep > 0 { options.metrics.stepDuration.record(.nanoseconds(Int64(now - active.lastStep))) }
                    active.lastStep = now
                    options.metrics.tokensGenerated(result.nextTokens.count)
                    if let why = deliver(active, Framing.envelope { $0.stepResult = .with { $0.step = result.step; $0.nextTokens = result.nextTokens } }) {
                        return undeliverable(active, "the tokens of step \(result.step)", why)
                    }
                }
                next = goesOn ? active.early.removeValue(forKey: UInt32(session.steps)) : nil
            }
        case var .error(e)?:
            if e.worker.isEmpty, e.hasStage, Int(e.stage) < slots.count, let worker = slots[Int(e.stage)] { e.worker = worker }
            finish(envelope.requestID, error: Framing.envelope(requestId: active.clientRequest) { $0.error = e })
            return
        default: return
        }
        if active.waitingForSaves && session.allSavesArrived { complete(envelope.requestID) }
    }

    /// Generation and saves are done: evaluate the nodes on the finished generation, then tell the client.
    private func complete(_ id: UInt64) {
        guard let active = traces[id] else { return }
        do throws(TraceError) {
            let steps = UInt32(active.session.steps)
            let fragment = active.session.compiled.fragments.first
            for (saveId, value) in try ClientNodes.evaluate(active.session.compiled.clientNodes, outcome: active.session.outcome,
                                                            invokeRows: { fragment?.rows(ofInvoke: $0) ?? $0..<($0 + 1) }, budget: options.budget.folding) {
                guard forward(.with { $0.saveID = saveId; $0.step = steps; $0.value = value.wire }, of: active) else { return }
            }
        } catch {
            finish(id, error: self.error(error, requestId: active.clientRequest))
            return
        }
        finish(id, error: nil)
    }

    /// Ends a trace: frees its state on every stage and answers the client.
    private func finish(_ id: UInt64, error: Envelope?, reason: String? = nil) {
        guard let active = traces.removeValue(forKey: id) else { return }
        for worker in slots.compactMap({ $0.flatMap { workers[$0] } }) { send(to: worker, active.session.release) }
        if let error {
            fail(active, error, reason: reason)
        } else if let run = active.run, run.index + 1 < run.graphs.count {
            // The session's next trace, with the values it takes from earlier ones.
            run.index += 1
            active.deliveredSteps = 0
            do throws(TraceError) {
                let graph = try run.current()
                guard graph.nodes.count <= Self.inlineCompileNodes else { return compileOffLoop(graph, for: active) }
                active.session = try newSession(graph)
                launch(active)
            } catch {
                var e = error
                e.message = "trace \(run.index) of the session: " + e.message
                fail(active, self.error(e, requestId: active.clientRequest))
            }
        } else {
            let steps = active.session.steps
            let messages = active.sent
            _ = deliver(active, Framing.envelope { $0.finished = .with { $0.steps = UInt32(steps); $0.messages = messages } }, exempt: true)
            ended(active, outcome: "finished")
        }
    }

    // MARK: - liveness

    /// Replays of one trace after lost workers, at most.
    static let maxReplays = 1

    /// Messages handled per socket per turn of the serving loop (the other socket's get their turn).
    static let receiveLimit = 1000

    private func housekeeping() throws {
        let now = Date()
        for (socket, monitor) in handshakeMonitors {
            for failure in monitor.failures().compactMap({ $0 }) {
                log.warning("handshake refused", metadata: ["socket": "\(socket) \(socket == "control" ? endpoint : resultsEndpoint)", "reason": "\(failure)"])
            }
        }
        // This process was stalled (paused, swapped, stopped): the workers could not be heard
        // meanwhile, so each gets its timeout afresh instead of being dropped for our silence.
        let gap = now.timeIntervalSince(lastHousekeeping)
        lastHousekeeping = now
        if gap * 1000 > Double(options.workerTimeoutMs) / 2 {
            log.warning("the coordinator was stalled; re-checking the workers", metadata: ["seconds": "\(Int(gap))"])
            for id in workers.keys { workers[id]!.lastSeen = max(workers[id]!.lastSeen, now) }
        }
        for (id, worker) in workers where worker.ready && now.timeIntervalSince(worker.lastSeen) * 1000 > Double(options.workerTimeoutMs) {
            workerLost(id, worker)
        }
        // A worker that was given a stage and did not become ready in time loses it, however
        // often it says Hello meanwhile (a spare that never loads must not hold a range).
        for (id, worker) in workers where !worker.ready && worker.stage != nil
            && now.timeIntervalSince(worker.assignedAt) * 1000 > Double(max(options.workerTimeoutMs, options.loadTimeoutMs)) {
            log.error("worker did not become ready within the load timeout; its layers go to another", metadata: ["worker": "\(id)", "seconds": "\(options.loadTimeoutMs / 1000)"])
            neverReady.insert(id)
            workerLost(id, worker)
        }
        resumeSuspended(now)
        for (id, spare) in standbys where now.timeIntervalSince(spare.lastSeen) > 10 { standbys[id] = nil }  // a spare says Hello every 2 s
        for (id, active) in traces where now > active.deadline {
            finish(id, error: error(.errorDeadline, "the trace's deadline passed at step \(active.session.steps)", requestId: active.clientRequest,
                                    step: UInt32(active.session.steps)))
        }
        let m = options.metrics
        m.running.set(to: Double(traces.count))
        m.queued.set(to: Double(suspended.count))
        m.workersServing.set(to: Double(slots.compactMap { $0 }.count))
        m.workersSpare.set(to: Double(standbys.count))
        m.process.setReady(isReady)
    }

    private func workerLost(_ id: String, _ worker: WorkerInfo) {
        workers[id] = nil
        workerOutbox.drop(Data(id.utf8))
        options.metrics.workersLost.increment()
        guard let stage = worker.stage else { return }
        slots[stage] = nil
        options.statistics.assign(stage: stage, to: nil)
        let range = stages[stage]
        log.error("worker lost", metadata: ["worker": "\(id)", "layers": "\(range)"])
        for (traceId, active) in traces {
            let step = active.session.steps
            let lost = error(.errorWorkerLost, "worker \(id) serving layers \(range.lowerBound)..<\(range.upperBound) stopped answering at step \(step)",
                             requestId: active.clientRequest, worker: id, step: UInt32(step))
            guard options.replayTimeoutMs > 0 else {
                finish(traceId, error: lost)
                continue
            }
            // A trace that was running when a worker was lost before may be what stops them: it
            // ends here instead of taking down every spare in turn.
            guard active.replays < Self.maxReplays else {
                var poisoned = lost
                poisoned.error.message += "; the trace was replayed after losing a worker before, and is not replayed again (it may be what stops the workers)"
                finish(traceId, error: poisoned)
                continue
            }
            // The surviving stages free this run; the trace waits for the stages to be served again.
            traces[traceId] = nil
            for worker in slots.compactMap({ $0.flatMap { workers[$0] } }) { send(to: worker, active.session.release) }
            suspended.append((active, Date(), lost))
        }
        // A spare takes the free range at once: one that never failed to load first, then the one
        // heard from last.
        if let (spare, standby) = standbys.max(by: { a, b in
            (neverReady.contains(a.key) ? 0 : 1, a.value.lastSeen) < (neverReady.contains(b.key) ? 0 : 1, b.value.lastSeen)
        }) {
            standbys[spare] = nil
            register(standby.hello, peer: Data(spare.utf8), key: standby.key)
        }
    }

    /// Replays the suspended traces once every stage is served again; ends those that waited
    /// past the replay timeout (or their deadline) with the error that suspended them.
    private func resumeSuspended(_ now: Date) {
        guard !suspended.isEmpty else { return }
        if isReady {
            let waiting = suspended
            suspended = []
            for entry in waiting { replay(entry.active) }
            return
        }
        suspended.removeAll { entry in
            guard now.timeIntervalSince(entry.since) * 1000 > Double(options.replayTimeoutMs) || now > entry.active.deadline else { return false }
            fail(entry.active, entry.error)
            return true
        }
    }

    // MARK: - status

    /// What the cluster is doing, for `nnsight status` (from Hellos and the latest heartbeats).
    private func status() -> Nnsight_V1_ClusterStatus {
        let now = Date()
        return .with { st in
            st.model = config.architectureId
            st.layers = UInt32(config.nLayer)
            st.ready = isReady
            st.endpoint = endpoint
            st.curve = options.keys != nil
            st.stages = stages.enumerated().map { s, range in
                .with { $0.stage = UInt32(s); $0.layerStart = UInt32(range.lowerBound); $0.layerEnd = UInt32(range.upperBound); $0.worker = slots[s] ?? "" }
            }
            st.workers = workers.values.sorted { ($0.stage ?? .max, $0.id) < ($1.stage ?? .max, $1.id) }.map { w in
                .with {
                    $0.id = w.id
                    $0.address = w.address
                    if let stage = w.stage {
                        $0.stage = UInt32(stage)
                        $0.layerStart = UInt32(stages[stage].lowerBound)
                        $0.layerEnd = UInt32(stages[stage].upperBound)
                    }
                    $0.threads = UInt32(w.threads)
                    $0.lastHeardMs = UInt64(max(0, now.timeIntervalSince(w.lastSeen)) * 1000)
                    $0.traces = w.beat.traces
                    $0.waitingTraces = w.beat.waitingTraces
                    $0.kvCacheBytes = w.beat.kvCacheBytes
                    $0.passes = w.beat.passes
                    $0.steps = w.beat.steps
                    $0.ready = w.ready && w.linked
                }
            } + standbys.sorted { $0.key < $1.key }.map { id, spare in
                .with {
                    $0.id = id
                    $0.address = spare.hello.address
                    $0.threads = spare.hello.threads
                    $0.lastHeardMs = UInt64(max(0, now.timeIntervalSince(spare.lastSeen)) * 1000)
                    $0.standby = true
                }
            }
            st.tracesRunning = UInt32(traces.count)
            st.tracesQueued = UInt32(suspended.count)
            let totals = options.metrics.totals
            st.tracesSubmitted = totals.submitted
            st.tracesFinished = totals.finished
            st.tracesFailed = totals.failed
            st.tokensGenerated = totals.tokens
            st.uptimeMs = UInt64(now.timeIntervalSince(startedAt) * 1000)
        }
    }

    private func shutdownWorkers() {
        for id in Array(workers.keys) + Array(standbys.keys) {
            reply(Data(id.utf8), Framing.envelope { $0.shutdown = .with { $0.reason = "the coordinator stops" } })
        }
    }
}
