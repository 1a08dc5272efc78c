import Coordinator
import Foundation
import Testing

/// The cluster recovers from what operators do to it, and says so truthfully: a worker restarted
/// under the same id at once (systemd's `RestartSec=2s`), a coordinator paused longer than the
/// workers wait for it. Both once left the cluster saying `serving` while traces hung, until the
/// workers gave up 60 s later. Through real processes.
@Suite(.serialized) struct RecoveryTests {
    @Test func aWorkerRestartedUnderTheSameIdIsAdmittedAtOnce() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinator(workers: 2)
        defer { coordinator.stop() }
        let w0 = try LivenessTests.worker(endpoint, id: "w0")
        defer { w0.stop() }
        var w1 = try LivenessTests.worker(endpoint, id: "w1")
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        w1.stop()  // SIGKILL, and a new process under the same id within the second
        w1 = try LivenessTests.worker(endpoint, id: "w1")
        defer { w1.stop() }
        let start = Date()
        #expect(try LivenessTests.generate(endpoint, within: 20) == LivenessTests.expected)
        #expect(Date().timeIntervalSince(start) < 10)
        #expect(coordinator.stderr.contains("worker registered again while serving its stage"), "\(coordinator.stderr)")
        let status = try LanguageModel.status(of: endpoint)
        #expect(status.ready && status.workers.filter(\.ready).map(\.id).sorted() == ["w0", "w1"])
    }

    @Test func aCoordinatorPausedLongerThanTheWorkersWaitRecovers() throws {
        let (coordinator, endpoint) = try LivenessTests.coordinator(workers: 2)
        defer { coordinator.stop() }
        let workers = try (0..<2).map { try LivenessTests.worker(endpoint, id: "w\($0)") }  // --coordinator-timeout 10
        defer { workers.forEach { $0.stop() } }
        #expect(try LivenessTests.generate(endpoint) == LivenessTests.expected)
        coordinator.signal(SIGSTOP)
        Thread.sleep(forTimeInterval: 15)
        coordinator.signal(SIGCONT)
        let start = Date()
        #expect(try LivenessTests.generate(endpoint, within: 30) == LivenessTests.expected)
        #expect(Date().timeIntervalSince(start) < 15)
        #expect(workers.allSatisfy { $0.process.isRunning && $0.stderr.contains("registering again") })
        let status = try LanguageModel.status(of: endpoint)
        #expect(status.ready && status.workers.filter(\.ready).count == 2)
    }
}
