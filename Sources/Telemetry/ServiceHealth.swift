import Prometheus
import Synchronization

/// What every serving process shows besides its own metrics: its resident memory, whether its
/// loop turns (`/healthz`) and whether it serves (`/readyz`, and a 0/1 gauge of the same).
public final class ServiceHealth: Sendable {
    /// Ticked by the serving loop.
    public let liveness = Liveness()
    private let readiness = Atomic<Bool>(false)
    private let ready: Gauge
    private let resident: Gauge

    /// - Parameter ready: the readiness gauge's name and help (e.g. `nnsight_cluster_ready`).
    public init(registry: PrometheusCollectorRegistry, ready: MetricNameDescriptor) {
        self.ready = registry.makeGauge(descriptor: ready)
        resident = registry.makeGauge(descriptor: .named("process_resident_memory_bytes", help: "Resident memory of this process."))
    }

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
