import ArgumentParser
import Coordinator
import Foundation
import Wire

struct Status: ParsableCommand, HasLogLevel {
    static let configuration = CommandConfiguration(
        abstract: "Show what a cluster is doing: its stages, workers and traces.",
        discussion: """
        Asks the coordinator at --cluster for the model it serves, each stage's layer range and
        worker, each worker's address, threads, last heartbeat, traces in flight and KV-cache
        memory, and the traces running and queued (waiting for a lost worker's replacement).
          nnsight status --cluster tcp://127.0.0.1:5555
          nnsight status --cluster tcp://127.0.0.1:5555 --json | jq '.workers[].layers'
        """)

    @OptionGroup var logging: LoggingOptions

    @Option(name: .long, help: "The coordinator's control endpoint, e.g. tcp://127.0.0.1:5555.")
    var cluster: String

    @Flag(name: .long, help: "Print one JSON object (for scripts).")
    var json = false

    @Option(name: .long, help: "CURVE keys: DIR/NAME.key this client's and DIR/coordinator.pub the coordinator's.")
    var keys: String?

    @Option(name: .long, help: "Seconds to wait for the answer.")
    var timeout: Int = 10

    func run() throws {
        let status: Nnsight_V1_ClusterStatus
        do {
            status = try LanguageModel.status(of: cluster, timeoutSeconds: timeout, keys: try keys.map(KeyDirectory.load))
        } catch {
            throw CLIError(description: "\(error)")
        }
        if json {
            let data = try JSONSerialization.data(withJSONObject: Self.object(status), options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(Self.text(status), terminator: "")
        }
    }

    /// The JSON form: snake_case keys, layer ranges as [start, end).
    static func object(_ s: Nnsight_V1_ClusterStatus) -> [String: Any] {
        [
            "model": s.model, "layers": s.layers, "ready": s.ready, "endpoint": s.endpoint, "curve": s.curve,
            "uptime_s": Double(s.uptimeMs) / 1000,
            "traces": ["running": s.tracesRunning, "queued": s.tracesQueued, "submitted": s.tracesSubmitted,
                       "finished": s.tracesFinished, "failed": s.tracesFailed],
            "tokens_generated": s.tokensGenerated,
            "stages": s.stages.map { ["stage": $0.stage, "layers": [$0.layerStart, $0.layerEnd], "worker": $0.worker.isEmpty ? NSNull() : $0.worker] as [String: Any] },
            "workers": s.workers.map { w -> [String: Any] in
                [
                    "id": w.id, "address": w.address, "stage": w.hasStage ? w.stage as Any : NSNull(),
                    "layers": w.hasStage ? [w.layerStart, w.layerEnd] as Any : NSNull(),
                    "threads": w.threads, "last_heartbeat_ms": w.lastHeardMs, "traces": w.traces,
                    "waiting_traces": w.waitingTraces, "kv_cache_bytes": w.kvCacheBytes,
                    "passes": w.passes, "steps": w.steps, "ready": w.ready, "standby": w.standby,
                ]
            },
        ]
    }

    static func text(_ s: Nnsight_V1_ClusterStatus) -> String {
        var out = "cluster \(s.endpoint): \(s.model), \(s.layers) layers, \(s.ready ? "ready" : "NOT READY")\(s.curve ? ", CURVE" : ""), up \(Int(s.uptimeMs / 1000)) s\n"
        out += "traces: \(s.tracesRunning) running, \(s.tracesQueued) queued; \(s.tracesSubmitted) submitted, \(s.tracesFinished) finished, \(s.tracesFailed) failed; \(s.tokensGenerated) tokens\n"
        let header = ["STAGE", "LAYERS", "WORKER", "ADDRESS", "THREADS", "HEARD", "TRACES", "KV MB", "STATE"]
        var rows = [header]
        for w in s.workers {
            rows.append([w.hasStage ? "\(w.stage)" : "-", w.hasStage ? "\(w.layerStart)..<\(w.layerEnd)" : "-", w.id, w.address,
                         "\(w.threads)", "\(w.lastHeardMs) ms ago", "\(w.traces)" + (w.waitingTraces > 0 ? " (+\(w.waitingTraces) waiting)" : ""),
                         String(format: "%.1f", Double(w.kvCacheBytes) / 1_048_576),
                         w.standby ? "spare" : w.ready ? "serving" : "loading"])
        }
        for stage in s.stages where stage.worker.isEmpty {
            rows.append(["\(stage.stage)", "\(stage.layerStart)..<\(stage.layerEnd)", "(none)", "-", "-", "-", "-", "-", "unserved"])
        }
        let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            out += row.enumerated().map { c, cell in cell.padding(toLength: widths[c], withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces) + "\n"
        }
        return out
    }
}
