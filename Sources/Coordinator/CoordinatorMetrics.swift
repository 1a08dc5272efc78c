import Foundation
import Prometheus
import Synchronization
import Telemetry
import Wire

/// The coordinator's Prometheus metrics (served by `nnsight serve --metrics ADDR`). Updated on
/// the serving thread, read by the metrics server's; every handle is thread-safe.
///
/// ```swift
/// var options = ClusterCoordinator.Options(model: dir, workers: 2)
/// let server = try MetricsServer(address: "127.0.0.1:9100", registry: options.metrics.registry, probes: options.metrics.process.probes)
/// ```
public final class CoordinatorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    private let submitted: Counter
    private let finished: Counter
    let replayed: Counter
    let running: Gauge
    let queued: Gauge
    let clientBufferBytes: Gauge
    private let tokens: Counter
    /// Between consecutive steps of a trace, as the coordinator receives them: what a client waits per token.
    let stepDuration: DurationHistogram
    let traceDuration: DurationHistogram
    let workersServing: Gauge
    let workersSpare: Gauge
    let workersLost: Counter
    /// Bytes, heartbeats missed, RSS, `/healthz` (the serving loop turns) and `/readyz` (every stage has a ready worker).
    public let process: ProcessMetrics
    /// The same counts as the counters above, readable (`nnsight status`).
    private let submittedCount = Atomic<UInt64>(0), finishedCount = Atomic<UInt64>(0)
    private let failedCount = Atomic<UInt64>(0), tokenCount = Atomic<UInt64>(0)

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        submitted = registry.makeCounter(descriptor: .named("nnsight_traces_submitted_total", help: "Submissions (a trace, or a whole session) received from clients."))
        finished = registry.makeCounter(descriptor: .named("nnsight_traces_finished_total", help: "Submissions that ran to their end."))
        replayed = registry.makeCounter(descriptor: .named("nnsight_traces_replayed_total", help: "Traces run again from their start after a worker was lost."))
        running = registry.makeGauge(descriptor: .named("nnsight_traces_running", help: "Traces on the stages now."))
        queued = registry.makeGauge(descriptor: .named("nnsight_traces_queued", help: "Traces waiting for a lost worker's replacement, to be replayed."))
        clientBufferBytes = registry.makeGauge(descriptor: .named("nnsight_client_buffer_bytes", help: "Results waiting for clients that read slower than their traces produce."))
        tokens = registry.makeCounter(descriptor: .named("nnsight_tokens_generated_total", help: "Tokens generated (one per batch row per step)."))
        stepDuration = registry.makeDurationHistogram(descriptor: .named("nnsight_step_duration_seconds", help: "Time between a trace's consecutive steps, as the coordinator receives them."), buckets: Self.latencyBuckets)
        traceDuration = registry.makeDurationHistogram(descriptor: .named("nnsight_trace_duration_seconds", help: "Submission to answer, for every submission that started."), buckets: Self.traceBuckets)
        workersServing = registry.makeGauge(descriptor: .named("nnsight_workers", help: "Workers by state."), labels: [("state", "serving")])
        workersSpare = registry.makeGauge(descriptor: .named("nnsight_workers", help: "Workers by state."), labels: [("state", "spare")])
        workersLost = registry.makeCounter(descriptor: .named("nnsight_workers_lost_total", help: "Workers dropped for silence."))
        process = ProcessMetrics(registry: registry, ready: .named("nnsight_cluster_ready", help: "1 when every stage has a ready worker."))
    }

    func traceSubmitted() {
        submitted.increment()
        submittedCount.add(1, ordering: .relaxed)
    }

    func traceFinished() {
        finished.increment()
        finishedCount.add(1, ordering: .relaxed)
    }

    /// A failed submission, by reason (`reason(_:)` of its error code, or e.g. "cancelled").
    func traceFailed(_ reason: String) {
        registry.makeCounter(descriptor: .named("nnsight_traces_failed_total", help: "Submissions that ended with an error, by reason."),
                             labels: [("reason", reason)]).increment()
        failedCount.add(1, ordering: .relaxed)
    }

    func tokensGenerated(_ n: Int) {
        tokens.increment(by: Int64(n))
        tokenCount.add(UInt64(n), ordering: .relaxed)
    }

    /// Submissions and tokens so far.
    var totals: (submitted: UInt64, finished: UInt64, failed: UInt64, tokens: UInt64) {
        (submittedCount.load(ordering: .relaxed), finishedCount.load(ordering: .relaxed),
         failedCount.load(ordering: .relaxed), tokenCount.load(ordering: .relaxed))
    }

    /// The layers each stage serves (set once: the split does not change).
    func describe(stages: [Range<Int>]) {
        for (s, range) in stages.enumerated() {
            let labels = [("stage", String(s))]
            registry.makeGauge(descriptor: .named("nnsight_stage_layer_start", help: "First layer of a stage."), labels: labels).set(to: Double(range.lowerBound))
            registry.makeGauge(descriptor: .named("nnsight_stage_layer_end", help: "One past the last layer of a stage."), labels: labels).set(to: Double(range.upperBound))
        }
    }

    /// "errorWorkerLost" -> "worker_lost".
    static func reason(_ code: WireErrorCode) -> String {
        switch code {
        case .errorMalformed: "malformed"
        case .errorVersionMismatch: "version_mismatch"
        case .errorTooLarge: "too_large"
        case .errorUnknownMessage: "unknown_message"
        case .errorInvalidTensor: "invalid_tensor"
        case .errorInvalidGraph: "invalid_graph"
        case .errorModelMismatch: "model_mismatch"
        case .errorStepNotReached: "step_not_reached"
        case .errorWorkerLost: "worker_lost"
        case .errorDeadline: "deadline"
        case .errorRefused: "refused"
        case .errorRuntime: "runtime"
        case .errorInternal: "internal"
        case .errorUndeliverable: "undeliverable"
        default: "unspecified"
        }
    }

    /// 1 ms to 30 s: a decode step of GPT-2 small to a long prompt of XL.
    static let latencyBuckets: [Duration] = [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(20),
                                             .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
                                             .seconds(1), .seconds(2), .seconds(5), .seconds(10), .seconds(30)]
    static let traceBuckets: [Duration] = [.milliseconds(10), .milliseconds(50), .milliseconds(100), .milliseconds(500),
                                           .seconds(1), .seconds(5), .seconds(10), .seconds(30), .seconds(60), .seconds(300)]
}
