import Coordinator
import Foundation
import Testing
import Wire

/// What an operator sees of a running cluster, every party a real process: `nnsight serve` and
/// two `nnsight-worker`s with `--metrics`, scraped after traces ran, and `nnsight status --json`.
@Suite(.serialized) struct ClusterMetricsTests {
    /// A process that printed "metrics on http://ADDR/metrics": ADDR.
    static func metricsAddress(_ p: ChildProcess) throws -> String {
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let range = p.stderr.range(of: #"metrics on http://[0-9.:]+/metrics"#, options: .regularExpression) {
                return String(p.stderr[range].dropFirst("metrics on http://".count).dropLast("/metrics".count))
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        throw TraceError.transport("no metrics address in: \(p.stderr)")
    }

    static func scrape(_ address: String) throws -> String {
        let page = HTTPGet.fetch("http://\(address)/metrics")
        try #require(page.status == 200, "GET http://\(address)/metrics: \(String(describing: page.status))")
        return page.body
    }

    /// Waits until every scraped worker reports `steps` trace steps (their counters move as the
    /// last saves arrive, a moment after the client has its answer).
    static func waitForSteps(_ addresses: [String], _ steps: Double) throws -> [String] {
        let deadline = Date().addingTimeInterval(10)
        while true {
            let pages = try addresses.map(scrape)
            if pages.allSatisfy({ HTTPGet.sample($0, "nnsight_stage_steps_total") == steps }) || Date() > deadline { return pages }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    @Test func countersMoveByWhatTheTracesDidAndStatusListsBothWorkers() throws {
        let coordinator = try ChildProcess(ChildProcess.beside("nnsight"), ["serve", "--model", Oracle.model, "--listen", "tcp://127.0.0.1:*",
                                                                         "--workers", "2", "--metrics", "127.0.0.1:0"])
        defer { coordinator.stop() }
        let (_, endpoint) = try LivenessTests.coordinatorEndpoint(coordinator)
        let coordinatorMetrics = try Self.metricsAddress(coordinator)
        let workers = try ["w0", "w1"].map { id in
            try ChildProcess(ChildProcess.beside("nnsight-worker"), ["--connect", endpoint, "--model", Oracle.model, "--id", id,
                                                                  "--threads", "1", "--metrics", "0"])
        }
        defer { workers.forEach { $0.stop() } }
        let workerMetrics = try workers.map(Self.metricsAddress)
        #expect(workerMetrics.allSatisfy { $0.hasPrefix("127.0.0.1:") })

        // Ready: the coordinator's /readyz turns 200 once both stages are served.
        let deadline = Date().addingTimeInterval(20)
        while HTTPGet.fetch("http://\(coordinatorMetrics)/readyz").status != 200, Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
        #expect(HTTPGet.fetch("http://\(coordinatorMetrics)/readyz").status == 200)
        #expect(HTTPGet.fetch("http://\(coordinatorMetrics)/healthz").status == 200)
        let before = try Self.scrape(coordinatorMetrics)
        #expect(HTTPGet.sample(before, "nnsight_traces_submitted_total") == 0)
        #expect(HTTPGet.sample(before, "nnsight_workers{state=\"serving\"}") == 2)
        let receivedBefore = try #require(HTTPGet.sample(before, "nnsight_received_bytes_total"))

        // Three traces of 5 new tokens, one row each; one submission for another model.
        for _ in 0..<3 { #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected) }
        let context = ZMQContext()
        let client = try context.socket(.dealer)
        try client.connect(endpoint)
        try client.send(try Framing.encode(Framing.envelope(requestId: 7) { $0.submit = .with { $0.model = "gpt2-xl" } }))
        let answer = try Framing.decode(try #require(try client.receive(timeoutMs: 5000)).last ?? Data())
        #expect(answer.error.code == .errorModelMismatch)

        let page = try Self.scrape(coordinatorMetrics)
        #expect(HTTPGet.sample(page, "nnsight_traces_submitted_total") == 4)
        #expect(HTTPGet.sample(page, "nnsight_traces_finished_total") == 3)
        #expect(HTTPGet.sample(page, "nnsight_traces_failed_total{reason=\"model_mismatch\"}") == 1)
        #expect(HTTPGet.sample(page, "nnsight_tokens_generated_total") == 15)
        // Steps 1...4 of each trace (the prompt pass is not a decode step).
        #expect(HTTPGet.sample(page, "nnsight_step_duration_seconds_count") == 12)
        #expect(HTTPGet.sample(page, "nnsight_trace_duration_seconds_count") == 3)
        #expect(HTTPGet.sample(page, "nnsight_traces_running") == 0)
        #expect(HTTPGet.sample(page, "nnsight_traces_queued") == 0)
        #expect(HTTPGet.sample(page, "nnsight_workers_lost_total") == 0)
        #expect(HTTPGet.sample(page, "nnsight_cluster_ready") == 1)
        #expect(try #require(HTTPGet.sample(page, "nnsight_received_bytes_total")) > receivedBefore)
        #expect(try #require(HTTPGet.sample(page, "process_resident_memory_bytes")) > 1_000_000)

        // Each stage ran every step of the three traces (5 each), one trace per pass.
        let pages = try Self.waitForSteps(workerMetrics, 15)
        var layers: [[Double]] = []
        for (i, worker) in pages.enumerated() {
            #expect(HTTPGet.sample(worker, "nnsight_stage_steps_total") == 15, "worker \(i)")
            #expect(HTTPGet.sample(worker, "nnsight_stage_passes_total") == 15, "worker \(i)")
            #expect(HTTPGet.sample(worker, "nnsight_stage_batch_steps_count") == 15, "worker \(i)")
            #expect(HTTPGet.sample(worker, "nnsight_stage_traces") == 0, "worker \(i)")
            #expect(HTTPGet.sample(worker, "nnsight_kv_cache_bytes") == 0, "worker \(i)")
            #expect(HTTPGet.sample(worker, "nnsight_stage_ready") == 1, "worker \(i)")
            #expect(try #require(HTTPGet.sample(worker, "nnsight_sent_bytes_total")) > 0, "worker \(i)")
            layers.append([try #require(HTTPGet.sample(worker, "nnsight_stage_layer_start")),
                           try #require(HTTPGet.sample(worker, "nnsight_stage_layer_end"))])
        }
        #expect(layers.sorted { $0[0] < $1[0] } == [[0, 3], [3, 4]])
        // Every step's activations hopped once into each stage: from the coordinator or the last
        // stage into stage 0, from stage 0 into stage 1.
        let hops = pages.map { page in page.split(separator: "\n").filter { $0.hasPrefix("nnsight_stage_hop_duration_seconds_count") } }
        #expect(hops.allSatisfy { $0.count == 1 && $0[0].hasSuffix(" 15") }, "\(hops)")

        // `nnsight status --json` lists both workers with their ranges, and the same totals.
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("status-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        let status = try ChildProcess(ChildProcess.beside("nnsight"), ["status", "--cluster", endpoint, "--json"], stdout: out)
        #expect(status.wait(seconds: 20))
        #expect(status.process.terminationStatus == 0, "\(status.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        #expect(json["ready"] as? Bool == true)
        #expect(json["layers"] as? Int == 4)
        let listed = try #require(json["workers"] as? [[String: Any]])
        #expect(listed.map { $0["id"] as? String } == ["w0", "w1"] || listed.map { $0["id"] as? String } == ["w1", "w0"])
        #expect(listed.map { $0["layers"] as? [Int] } == [[0, 3], [3, 4]])
        #expect(listed.map { $0["stage"] as? Int } == [0, 1])
        #expect(listed.allSatisfy { ($0["address"] as? String)?.hasPrefix("tcp://127.0.0.1:") == true })
        #expect(listed.allSatisfy { $0["threads"] as? Int == 1 && $0["ready"] as? Bool == true && $0["standby"] as? Bool == false })
        #expect(listed.allSatisfy { ($0["last_heartbeat_ms"] as? Int).map { $0 < 3000 } == true })
        let stages = try #require(json["stages"] as? [[String: Any]])
        #expect(stages.map { $0["layers"] as? [Int] } == [[0, 3], [3, 4]])
        #expect(Set(stages.compactMap { $0["worker"] as? String }) == ["w0", "w1"])
        let traces = try #require(json["traces"] as? [String: Any])
        #expect(traces["submitted"] as? Int == 4)
        #expect(traces["finished"] as? Int == 3)
        #expect(traces["failed"] as? Int == 1)
        #expect(traces["running"] as? Int == 0)
        #expect(json["tokens_generated"] as? Int == 15)

        // One log line per trace start and end, naming the trace, client, steps, duration and outcome.
        let ended = coordinator.stderr.split(separator: "\n").filter { $0.contains("trace ended") }
        #expect(ended.count == 3)
        #expect(ended.allSatisfy { $0.contains("outcome=finished") && $0.contains("steps=5") && $0.contains("duration_ms=") && $0.contains("client=client-") })
        #expect(coordinator.stderr.split(separator: "\n").filter { $0.contains("trace started") }.count == 3)
        #expect(coordinator.stderr.contains("outcome=model_mismatch"))
    }

    @Test func statusOfAnAbsentCoordinatorIsAClearErrorWithinSeconds() throws {
        let status = try ChildProcess(ChildProcess.beside("nnsight"), ["status", "--cluster", "tcp://127.0.0.1:9"])
        #expect(status.wait(seconds: 15))
        #expect(status.process.terminationStatus != 0)
        #expect(status.stderr.contains("no coordinator answered at tcp://127.0.0.1:9"))
    }

    @Test func logLevelErrorSilencesTheTraceLines() throws {
        let coordinator = try ChildProcess(ChildProcess.beside("nnsight"), ["serve", "--model", Oracle.model, "--listen", "tcp://127.0.0.1:*",
                                                                         "--workers", "1", "--log-level", "error"])
        defer { coordinator.stop() }
        let (_, endpoint) = try LivenessTests.coordinatorEndpoint(coordinator)
        let worker = try LivenessTests.worker(endpoint, id: "w0")
        defer { worker.stop() }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        #expect(!coordinator.stderr.contains("trace ended"))
        #expect(!coordinator.stderr.contains("worker registered"))
    }
}
