import CThread
import Engine
import Foundation
import Synchronization
import Testing

/// The compute pool: every part runs exactly once, ranges tile their span, concurrent callers
/// stay correct, and placement pins the threads.
@Suite struct ComputePoolTests {
    /// Counts how often each part ran, from any thread.
    /// (An NSLock rather than `Mutex`: the thread sanitizer understands pthread locks.)
    final class Tally: @unchecked Sendable {
        private let lock = NSLock()
        private var counts: [Int]
        init(_ n: Int) { counts = [Int](repeating: 0, count: n) }
        func hit(_ i: Int) { lock.withLock { counts[i] += 1 } }
        var values: [Int] { lock.withLock { counts } }
    }

    @Test(arguments: [1, 2, 3, 4])
    func everyPartRunsExactlyOnce(threads: Int) {
        let pool = ComputePool(threads: threads)
        for parts in [0, 1, 2, 5, 64, 1000] {
            let tally = Tally(parts)
            let threadsSeen = Tally(threads)
            pool.pass {
                pool.parallel(parts: parts) { part, thread in
                    tally.hit(part)
                    threadsSeen.hit(thread)
                }
            }
            #expect(tally.values == [Int](repeating: 1, count: parts), "\(parts) parts on \(threads) threads")
            #expect(threadsSeen.values.reduce(0, +) == parts)
        }
    }

    @Test func splitTilesTheRangeAtGranuleBounds() {
        let pool = ComputePool(threads: 2)
        for (count, granule) in [(0, 16), (1, 16), (15, 16), (16, 16), (3072, 16), (50257, 64), (7, 1)] {
            let tally = Tally(count)
            let misaligned = Atomic<Int>(0)
            pool.split(count: count, granule: granule) { range in
                if range.lowerBound % granule != 0 { misaligned.wrappingAdd(1, ordering: .relaxed) }
                for i in range { tally.hit(i) }
            }
            #expect(tally.values == [Int](repeating: 1, count: count), "count \(count), granule \(granule)")
            #expect(misaligned.load(ordering: .relaxed) == 0)
        }
    }

    /// Two threads submitting at once (in-process stages share the pool): one gets the helpers,
    /// the other runs its parts itself; both get every part once.
    @Test func concurrentCallersEachGetTheirParts() {
        let pool = ComputePool(threads: 2)
        let rounds = 200, parts = 16
        let tallies = [Tally(parts), Tally(parts)]
        DispatchQueue.concurrentPerform(iterations: 2) { caller in
            for _ in 0..<rounds {
                pool.pass { pool.parallel(parts: parts) { part, _ in tallies[caller].hit(part) } }
            }
        }
        for tally in tallies { #expect(tally.values == [Int](repeating: rounds, count: parts)) }
    }

    /// A helper that sleeps between passes wakes for the next one (many short passes, each
    /// after the helpers had time to fall asleep).
    @Test func helpersWakeForEveryPass() {
        let pool = ComputePool(threads: 2)
        for round in 0..<20 {
            if round % 5 == 0 { usleep(3_000) }  // longer than the spin limit: helpers sleep
            let tally = Tally(8)
            pool.pass { pool.parallel(parts: 8) { part, _ in tally.hit(part) } }
            #expect(tally.values == [Int](repeating: 1, count: 8))
        }
    }

    @Test func placementPinsCallerAndHelpers() throws {
        let allowed = ComputePool.allowedCPUs()  // under `taskset` or a cpuset, not necessarily from 0
        let (callerCPU, helperCPU) = (allowed[0], allowed[allowed.count > 1 ? 1 : 0])
        let pool = ComputePool(threads: 2)
        final class CPUs: @unchecked Sendable {
            let lock = NSLock()
            var byThread: [Int: Int32] = [:]
            func withLock<R>(_ body: (inout [Int: Int32]) -> R) -> R { lock.withLock { body(&byThread) } }
        }
        let cpuOfThread = CPUs()
        // Run on a thread of our own: the test runner's threads keep their affinity.
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var failure: Error?
        Thread {
            do {
                try pool.place(on: [callerCPU, helperCPU])
                // Each part waits for the other to start, so each thread takes exactly one.
                pool.pass {
                    pool.parallel(parts: 2) { _, thread in
                        cpuOfThread.withLock { $0[thread] = cthread_pinned_cpu() }
                        let deadline = Date().addingTimeInterval(10)
                        while cpuOfThread.withLock({ $0.count }) < 2 && Date() < deadline { usleep(100) }
                    }
                }
            } catch { failure = error }
            done.signal()
        }.start()
        done.wait()
        #expect(failure == nil)
        let cpusSeen = cpuOfThread.withLock { $0 }
        #expect(cpusSeen[0] == Int32(callerCPU), "the caller runs on its CPU")
        #expect(cpusSeen[1] == Int32(helperCPU), "the helper runs on its CPU")
        #expect(throws: EngineError.self) { try pool.place(on: [Int(CPU_SETSIZE) + 1]) }
    }
}
