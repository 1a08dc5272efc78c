import Prometheus

extension MetricNameDescriptor {
    /// A metric whose whole name is given, conventions included (`nnsight_..._total`, `_seconds`, `_bytes`).
    public static func named(_ name: String, help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }
}
