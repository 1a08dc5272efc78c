import Engine
import Foundation
import Logging
import Wire

/// A worker process: registers with a coordinator, is assigned a layer range, loads only those
/// weights, and serves that pipeline stage until told to stop or the coordinator goes silent.
///
/// ```swift
/// try WorkerProcess(options).run()   // nnsight-worker --connect tcp://127.0.0.1:5555 --model DIR
/// ```
public struct WorkerProcess {
    public struct Options: Sendable {
        public var connect: String
        public var bind: String
        public var model: String
        public var workerId: String
        public var heartbeatMs = 1000
        public var coordinatorTimeoutMs = 10_000
        public var assignmentTimeoutMs = 60_000
        /// How the stage stores its weights.
        public var weightType = WeightType.f32
        /// Serving limits: traces per stacked pass, the batching window, KV-cache memory.
        public var maxBatch = 16
        public var batchWindowMs = 0.0
        public var kvMemoryBytes: Int?
        /// Bytes one value of a trace may take (`--max-value-mb`).
        public var maxValueBytes = 1 << 30
        /// How long a trace's first step may take to arrive after its fragment (`--first-step-timeout`).
        public var firstStepTimeoutMs = 300_000
        /// CURVE (`--keys DIR`): this worker's keypair and the coordinator's public key.
        public var keys: KeyDirectory?
        /// A spare: it waits (without a deadline) for the first layer range that becomes free.
        public var standby = false
        /// The host others reach this worker at when `bind` is a wildcard (`tcp://0.0.0.0:5557`);
        /// default: this machine's host name.
        public var advertiseHost: String?
        /// Prometheus metrics of this worker (`--metrics ADDR` serves `metrics.registry`).
        public var metrics = StageMetrics()
        /// Compute threads, announced in the Hello (`nnsight status` shows them).
        public var threads = BLASRuntime.threads

        public init(connect: String, bind: String = "tcp://127.0.0.1:*", model: String, workerId: String) {
            self.connect = connect
            self.bind = bind
            self.model = model
            self.workerId = workerId
        }
    }

    let options: Options
    let log: Logger
    /// This process's registrations carry it: the coordinator tells a restart from a repeat.
    let incarnation = UInt64.random(in: 1...UInt64.max)
    /// The weights of a layer range: loaded from `options.model`, or given (in-process stages).
    let load: @Sendable (GPT2Config, Range<Int>) throws -> GPT2
    let config: GPT2Config?
    let context: ZMQContext

    public init(_ options: Options, log: Logger = Logger(label: "nnsight.worker")) {
        self.options = options
        self.log = log
        let directory = options.model
        let type = options.weightType
        load = { config, layers in GPT2(weights: try GPT2Weights.load(directory: directory, config: config, layers: layers, type: type)) }
        config = nil
        context = ZMQContext()
    }

    /// A stage of this process (local mode): the same registration, assignment and serving as a
    /// worker process, over the caller's context (for `inproc://` endpoints), with weights in memory.
    public init(_ options: Options, config: GPT2Config, context: ZMQContext, log: Logger = Logger(label: "nnsight.stage"),
                load: @escaping @Sendable (Range<Int>) throws -> GPT2) {
        self.options = options
        self.log = log
        self.config = config
        self.context = context
        self.load = { _, layers in try load(layers) }
    }

    /// Registers, serves the stage it is given, and registers again whenever the coordinator
    /// drops it or goes silent (keeping its weights when the range is the same), until a
    /// Shutdown from the coordinator, `shouldStop`, or no assignment within the timeout.
    public func run(shouldStop: () -> Bool = { false }) throws {
        let config = try self.config ?? GPT2Config.load(directory: options.model)
        var curve: WorkerCurve?
        if let keys = options.keys {
            let coordinatorKey = try keys.requireCoordinatorKey()
            // Until an assignment names the senders, only the coordinator may connect.
            let zap = try ZAPHandler(context: context, accepted: [coordinatorKey]) { [log] refusal in
                log.warning("handshake refused", metadata: ["peer": "\(refusal)"])
            }
            curve = WorkerCurve(keys: keys.own, coordinatorKey: coordinatorKey, zap: zap)
        }
        let input = try context.socket(.pull)
        try input.setMaxMessageSize(WireProtocol.defaultMaxMessageBytes)
        if let curve { try input.makeCurveServer(curve.keys) }
        try input.bind(options.bind)
        // What the coordinator and the previous stage connect to: never a wildcard.
        let address = Endpoint.reachable(input.lastEndpoint, at: options.advertiseHost ?? ProcessInfo.processInfo.hostName)
        // One control connection for the process's life: a ROUTER ignores a second connection
        // with the same identity, and ZeroMQ reconnects this one when the coordinator restarts.
        let control = try context.socket(.dealer)
        try control.setIdentity(options.workerId)
        if let curve { try control.makeCurveClient(curve.keys, serverKey: curve.coordinatorKey) }
        let handshakes = try control.monitorHandshakes()
        try control.connect(options.connect)
        var loaded: (layers: Range<Int>, model: GPT2)?
        while true {
            log.info("registering", metadata: ["worker": "\(options.workerId)", "input": "\(address)", "coordinator": "\(options.connect)"])
            guard let stage = try register(control, handshakes: handshakes, address: address, config: config, shouldStop: shouldStop) else { return }
            let layers = Int(stage.layerStart)..<Int(stage.layerEnd)
            log.info("assigned", metadata: ["layers": "\(layers)", "stage": "\(stage.stage)/\(stage.stageCount)"])
            let model = try loaded.flatMap { $0.layers == layers ? $0.model : nil } ?? load(config, layers)
            loaded = (layers, model)
            do {
                try serve(stage, model: model, input: input, address: address, control: control, curve: curve, shouldStop: shouldStop)
                log.info("stopped")
                return
            } catch let error as WorkerError {
                switch error {
                case .dropped, .coordinatorLost: log.warning("registering again", metadata: ["reason": "\(error)"])
                default: throw error
                }
            }
        }
    }

    /// Hello until the coordinator assigns a stage (it may start after us); nil on Shutdown or stop.
    /// A coordinator that refuses the handshake (a key it does not accept, or security this
    /// worker does not speak) is an error at once, not a silent wait for the timeout.
    private func register(_ control: ZMQSocket, handshakes: HandshakeMonitor, address: String, config: GPT2Config,
                          shouldStop: () -> Bool) throws -> Nnsight_V1_StageAssignment? {
        let hello = Framing.envelope {
            $0.hello = .with {
                $0.workerID = options.workerId
                $0.address = address
                $0.capacity = 64
                $0.model = config.architectureId
                $0.standby = options.standby
                $0.threads = UInt32(max(0, options.threads))
                $0.incarnation = incarnation
            }
        }
        let deadline = Date().addingTimeInterval(Double(options.assignmentTimeoutMs) / 1000)
        var lastHello = Date.distantPast
        while true {
            options.metrics.process.liveness.tick()
            if shouldStop() { return nil }
            guard options.standby || Date() < deadline else { throw WorkerError.noAssignment(seconds: options.assignmentTimeoutMs / 1000) }
            if let failure = handshakes.failure(), !handshakes.succeeded {
                throw WorkerError.refused("\(failure)" + (options.keys == nil ? "; the coordinator may require CURVE keys (--keys DIR)" : ""))
            }
            if Date().timeIntervalSince(lastHello) > 2 {
                try control.send(try Framing.encode(hello))
                lastHello = Date()
            }
            guard let frames = try control.receive(timeoutMs: 200), let envelope = try? Framing.decode(frames.last ?? Data()) else { continue }
            switch envelope.body {
            case let .assignment(a)?: return a
            case let .error(e)? where e.code == .errorWorkerLost: continue  // the answer to a heartbeat sent before the drop
            case let .error(e)?: throw WorkerError.refused(e.message)
            case .shutdown?: return nil
            default: continue
            }
        }
    }

    /// Serves one assignment until Shutdown / stop (returns) or a drop / lost coordinator (throws).
    private func serve(_ stage: Nnsight_V1_StageAssignment, model: GPT2, input: ZMQSocket, address: String, control: ZMQSocket,
                       curve: WorkerCurve?, shouldStop: () -> Bool) throws {
        curve?.accept(stage)
        // A coordinator that bound its results to every interface is reached where --connect reaches it.
        let results = Endpoint.reachable(stage.resultsAddress, at: Endpoint.host(of: options.connect) ?? "127.0.0.1")
        let coordinator = try context.push(connectingTo: results, keys: curve?.keys, serverKey: curve?.coordinatorKey ?? "")
        let next = stage.nextAddress.isEmpty ? nil : try context.push(connectingTo: stage.nextAddress, keys: curve?.keys, serverKey: stage.nextPublicKey)
        // Ready: the assignment echoed back.
        try control.send(try Framing.encode(Framing.envelope { $0.assignment = stage }))
        log.info("serving", metadata: ["layers": "\(stage.layerStart)..<\(stage.layerEnd)", "parameters": "\(model.weights.parameterCount)"])
        let worker = StageWorker(model: model, context: context,
                                 endpoints: StageEndpoints(input: address, next: stage.nextAddress.isEmpty ? nil : stage.nextAddress,
                                                           coordinator: stage.resultsAddress))
        worker.stageIndex = Int(stage.stage)
        worker.stageCount = max(1, Int(stage.stageCount))
        worker.maxBatch = max(1, options.maxBatch)
        worker.batchWindowMs = max(0, options.batchWindowMs)
        worker.kvMemoryLimit = options.kvMemoryBytes
        worker.valueBudget.maxValueBytes = options.maxValueBytes
        worker.firstStepTimeoutMs = options.firstStepTimeoutMs
        worker.curve = curve
        worker.metrics = options.metrics
        options.metrics.serving(Int(stage.layerStart)..<Int(stage.layerEnd))
        defer { options.metrics.serving(nil) }
        try worker.serve(input: input, next: next, coordinator: coordinator, control: control,
                         heartbeatMs: options.heartbeatMs, coordinatorTimeoutMs: options.coordinatorTimeoutMs,
                         sender: options.workerId, shouldStop: shouldStop)
    }
}
