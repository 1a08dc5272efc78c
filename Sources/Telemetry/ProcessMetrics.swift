import Foundation
import Prometheus
import Synchronization

/// What every serving process shows besides its own metrics: bytes in and out, heartbeats
/// missed, resident memory, whether its loop turns (`/healthz`) and whether it serves
/// (`/readyz`, and a 0/1 gauge of the same).
public final class ProcessMetrics: Sendable {
    private let received: Counter
    private let sent: Counter
    /// Heartbeat intervals in which the peer was not heard (the coordinator: a serving worker;
    /// a worker: the coordinator).
    public let heartbeatsMissed: Counter
    /// Ticked by the serving loop.
    public let liveness = Liveness()
    private let readiness = Atomic<Bool>(false)
    private let ready: Gauge
    private let resident: Gauge

    /// - Parameter ready: the readiness gauge's name and help (e.g. `nnsight_cluster_ready`).
    public init(registry: PrometheusCollectorRegistry, ready: MetricNameDescriptor) {
        received = registry.makeCounter(descriptor: .named("nnsight_received_bytes_total", help: "Bytes of messages this process received."))
        sent = registry.makeCounter(descriptor: .named("nnsight_sent_bytes_total", help: "Bytes of messages this process sent."))
        heartbeatsMissed = registry.makeCounter(descriptor: .named("nnsight_heartbeats_missed_total",
                                                                   help: "Heartbeat intervals in which a peer (a serving worker; for a worker, the coordinator) was not heard."))
        self.ready = registry.makeGauge(descriptor: ready)
        resident = registry.makeGauge(descriptor: .named("process_resident_memory_bytes", help: "Resident memory of this process."))
    }

    /// A message's frames came in, on any socket of the process.
    public func countReceived(_ frames: [Data]) { received.increment(by: Int64(frames.reduce(0) { $0 + $1.count })) }

    /// A frame went out.
    public func countSent(_ frame: Data) { sent.increment(by: Int64(frame.count)) }

    public var isReady: Bool { readiness.load(ordering: .relaxed) }

    public func setReady(_ isReady: Bool) {
        ready.set(to: isReady ? 1 : 0)
        readiness.store(isReady, ordering: .relaxed)
    }

    /// What `/metrics` (after refreshing the RSS), `/healthz` and `/readyz` answer.
    public var probes: MetricsServer.Probes {
        var probes = MetricsServer.Probes()
        probes.refresh = { [resident] in if let bytes = ProcessMemory.resident() { resident.set(to: Double(bytes)) } }
        probes.isLive = { [liveness] in liveness.isLive }
        probes.isReady = { [self] in isReady }
        return probes
    }
}
