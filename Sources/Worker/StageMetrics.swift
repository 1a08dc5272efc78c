import Foundation
import Prometheus
import Telemetry

/// A worker's Prometheus metrics (served by `nnsight-worker --metrics ADDR`). Updated on the
/// serving thread, read by the metrics server's; every handle is thread-safe.
///
/// ```swift
/// var options = WorkerProcess.Options(connect: "tcp://127.0.0.1:5555", model: dir, workerId: "w0")
/// let server = try MetricsServer(address: "127.0.0.1:9101", registry: options.metrics.registry, probes: options.metrics.process.probes)
/// ```
public final class StageMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let passes: Counter
    let steps: Counter
    let batchSteps: ValueHistogram
    let traces: Gauge
    let waiting: Gauge
    let kvCache: Gauge
    /// Bytes, heartbeats missed, RSS, `/healthz` (the serving and registering loops turn) and `/readyz` (it serves a stage).
    public let process: ProcessMetrics
    private let layerStart: Gauge
    private let layerEnd: Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        passes = registry.makeCounter(descriptor: .named("nnsight_stage_passes_total", help: "Forward passes this stage ran."))
        steps = registry.makeCounter(descriptor: .named("nnsight_stage_steps_total", help: "Trace steps those passes ran (several traces share a pass)."))
        batchSteps = registry.makeValueHistogram(descriptor: .named("nnsight_stage_batch_steps", help: "Trace steps per forward pass."),
                                                 buckets: [1, 2, 4, 8, 16, 32, 64])
        traces = registry.makeGauge(descriptor: .named("nnsight_stage_traces", help: "Traces this stage holds (in flight)."))
        waiting = registry.makeGauge(descriptor: .named("nnsight_stage_waiting_traces", help: "Traces waiting for KV-cache memory (--kv-memory)."))
        kvCache = registry.makeGauge(descriptor: .named("nnsight_kv_cache_bytes", help: "KV-cache memory the traces held here use."))
        process = ProcessMetrics(registry: registry, ready: .named("nnsight_stage_ready", help: "1 while this worker serves a stage."))
        layerStart = registry.makeGauge(descriptor: .named("nnsight_stage_layer_start", help: "First layer this worker serves."))
        layerEnd = registry.makeGauge(descriptor: .named("nnsight_stage_layer_end", help: "One past the last layer this worker serves."))
    }

    /// Forward-pass time on this stage (by stage index: a worker may serve another after re-registering).
    func passDuration(stage: Int) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: .named("nnsight_stage_pass_duration_seconds", help: "Time of one forward pass of this stage's layers."),
                                       labels: [("stage", String(stage))], buckets: Self.latencyBuckets)
    }

    /// Sender's send to this stage's receipt of a step's activations (wall clocks: exact on one host,
    /// as good as clock sync across hosts).
    func hopDuration(stage: Int) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: .named("nnsight_stage_hop_duration_seconds", help: "From the previous stage's (or the coordinator's) send to this stage's receipt."),
                                       labels: [("stage", String(stage))], buckets: Self.hopBuckets)
    }

    func serving(_ layers: Range<Int>?) {
        process.setReady(layers != nil)
        if let layers {
            layerStart.set(to: Double(layers.lowerBound))
            layerEnd.set(to: Double(layers.upperBound))
        }
    }

    static let latencyBuckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
                                             .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
                                             .seconds(1), .seconds(2), .seconds(5), .seconds(10)]
    static let hopBuckets: [Duration] = [.microseconds(20), .microseconds(50), .microseconds(100), .microseconds(200), .microseconds(500),
                                         .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50),
                                         .milliseconds(100), .milliseconds(500), .seconds(1)]
}
