import CThread
import Foundation
import Synchronization

/// The threads a forward pass splits its matrix products over.
///
/// Why not OpenBLAS's own threads: they keep spinning (yielding) for about 0.1 s after every
/// call. With several pipeline stages on one machine, each stage is idle most of the time and its
/// spinning threads compete for the cores with the stage that is computing. Helpers here spin only
/// while a forward pass runs (inside `pass`) and sleep from its end to the next one's start, which
/// wakes them while the caller is still embedding or normalising. OpenBLAS runs single-threaded
/// inside each part.
///
/// A job is a number of parts that the caller and the helpers claim one at a time, so a helper
/// that is not running (its core taken by another stage's work) holds nothing up: the caller
/// takes the parts it has not claimed.
///
/// ```swift
/// let pool = ComputePool.shared
/// pool.threads = 2
/// pool.pass {
///     pool.split(count: n, granule: 16) { columns in ... }   // on the caller and the helper
/// }
/// ```
public final class ComputePool: @unchecked Sendable {
    /// The process's pool; its size is what `BLASRuntime.threads` sets.
    public static let shared = ComputePool(threads: usableCores)

    /// A helper spins at most this long (inside a pass) before sleeping, so a long hook or a
    /// stalled caller does not keep a core busy.
    static let spinLimitNanoseconds: UInt64 = 2_000_000

    /// Parts per thread that `split` cuts a range into: a few, so that the caller can take over
    /// the share of a helper that is late.
    static let partsPerThread = 2

    private final class Helper: @unchecked Sendable {
        let sleeping = Atomic<Bool>(false)
        let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

        init() {
            pthread_mutex_init(mutex, nil)
            pthread_cond_init(condition, nil)
        }

        /// Set by `place(on:)`; the helper pins itself when it sees it.
        let repin = Atomic<Bool>(false)

        func wakeToRepin() {
            repin.store(true, ordering: .sequentiallyConsistent)
            wake()
        }

        /// Wakes the helper if it sleeps (after the caller changed what it waits for).
        func wake() {
            guard sleeping.load(ordering: .sequentiallyConsistent) else { return }
            pthread_mutex_lock(mutex)
            pthread_cond_signal(condition)
            pthread_mutex_unlock(mutex)
        }
    }

    /// The running job in one word, so that a part is claimed with one compare-and-swap that
    /// fails once the job is over: generation (bits 40...63), next part (20...39), parts (0...19).
    private struct JobState {
        var bits: UInt64
        init(bits: UInt64) { self.bits = bits }
        static let generationMask: UInt64 = 0xFF_FFFF
        init(generation: UInt64, next: Int, parts: Int) {
            bits = (generation & Self.generationMask) << 40 | UInt64(next) << 20 | UInt64(parts)
        }
        var generation: UInt64 { bits >> 40 }
        var next: Int { Int(bits >> 20 & 0xF_FFFF) }
        var parts: Int { Int(bits & 0xF_FFFF) }
    }

    // NSLock rather than `Mutex` for the two lists: the thread sanitizer understands pthread locks.
    private let lock = NSLock()
    private var helperList: [Helper] = []
    private var helpers: [Helper] { lock.withLock { helperList } }
    private let threadCount: Atomic<Int>
    /// Held by the one caller whose job the helpers run; others run their parts themselves.
    private let busy = Atomic<Bool>(false)
    /// Forward passes in progress (several with in-process stages); helpers spin only while > 0.
    private let passes = Atomic<Int>(0)
    /// Bumped when a pass starts, to wake sleeping helpers ahead of the first job.
    private let passEpoch = Atomic<UInt64>(0)
    private let state = Atomic<UInt64>(0)
    /// Parts of the running job finished so far.
    private let finished = Atomic<Int>(0)
    /// The running job's body(part, thread); written only by the caller holding `busy`.
    private var job: ((Int, Int) -> Void)?
    /// `threads` when the running job started: helpers numbered beyond it stay out.
    private let jobThreads = Atomic<Int>(1)
    private var generation: UInt64 = 0

    /// CPUs the threads are placed on (empty: wherever the scheduler puts them); under `lock`.
    private var placement: [Int] = []

    /// Most parts one job can have.
    public static let maxParts = 0xF_FFFF

    public init(threads: Int) {
        threadCount = Atomic(1)
        self.threads = threads
    }

    /// Threads a job is split over, the caller's included (at least 1).
    public var threads: Int {
        get { threadCount.load(ordering: .relaxed) }
        set {
            let count = max(1, newValue)
            // A pool's helper threads live as long as the process (the shared pool does anyway).
            lock.withLock {
                while helperList.count < count - 1 {
                    let helper = Helper(), index = helperList.count + 1
                    helperList.append(helper)
                    Thread { self.serve(helper, thread: index) }.start()
                }
                threadCount.store(count, ordering: .relaxed)
            }
        }
    }

    /// The CPUs the calling thread may run on, ascending (a container or `taskset` may allow
    /// fewer than the machine has, and not from 0).
    public static func allowedCPUs() -> [Int] {
        var cpus = [Int32](repeating: 0, count: Int(CPU_SETSIZE))
        let count = cthread_allowed_cpus(&cpus, Int32(cpus.count))
        guard count > 0 else { return Array(0..<ProcessInfo.processInfo.activeProcessorCount) }
        return cpus.prefix(Int(count)).map(Int.init)
    }

    /// How many CPUs this process may use: the default number of compute threads (Foundation's
    /// `activeProcessorCount` counts the machine's, whatever `taskset` or a cpuset allows).
    public static var usableCores: Int { allowedCPUs().count }

    /// Places the calling thread on `cpus[0]` and helper `i` on `cpus[i % cpus.count]`.
    ///
    /// For several workers on one machine: with every worker's calling thread (which also runs
    /// its ZeroMQ sockets) on one CPU and the helpers on the others, a message passed from stage
    /// to stage wakes threads on the CPU it is sent from rather than interrupting another one.
    /// Threads the caller creates afterwards (ZeroMQ's I/O threads) inherit its CPU.
    public func place(on cpus: [Int]) throws {
        guard let first = cpus.first else { return }
        guard cthread_pin_self(Int32(first)) == 0 else { throw EngineError.invalidArgument("cannot run on CPU \(first): \(String(cString: strerror(errno)))") }
        lock.withLock { placement = cpus }
        for helper in helpers { helper.wakeToRepin() }
    }

    /// Runs `body` as one forward pass: helpers are woken now and spin until it returns.
    public func pass<R>(_ body: () throws -> R) rethrows -> R {
        if passes.wrappingAdd(1, ordering: .sequentiallyConsistent).newValue == 1 {
            passEpoch.wrappingAdd(1, ordering: .sequentiallyConsistent)
            for helper in helpers.prefix(threads - 1) { helper.wake() }
        }
        defer { passes.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        return try body()
    }

    /// Runs `body(part, thread)` once for every `part` in `0..<parts`, on the caller (thread 0)
    /// and the helpers (threads 1..<threads, as of the call), whichever claims the part first.
    /// While another caller's job runs, runs every part on this thread.
    public func parallel(parts: Int, _ body: (_ part: Int, _ thread: Int) -> Void) {
        precondition(parts <= Self.maxParts, "a job has at most \(Self.maxParts) parts")
        let threads = self.threads
        guard parts > 1, threads > 1,
              busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
            for part in 0..<parts { body(part, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            job = body
            jobThreads.store(threads, ordering: .relaxed)
            finished.store(0, ordering: .relaxed)
            generation = (generation + 1) & JobState.generationMask
            state.store(JobState(generation: generation, next: 0, parts: parts).bits, ordering: .sequentiallyConsistent)
            for helper in helpers.prefix(threads - 1) { helper.wake() }
            let mine = runParts(generation: generation, thread: 0)
            finished.wrappingAdd(mine, ordering: .relaxed)
            var spins = 0
            while finished.load(ordering: .acquiring) < parts {
                spins += 1
                // A helper preempted inside a part gets the caller's time slice.
                if spins > 2_000 { sched_yield() } else { cthread_relax() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// How many parts a job of `blocks` indivisible blocks is cut into: a few per thread, at most
    /// one per block, 1 on a single thread.
    func parts(blocks: Int) -> Int {
        max(1, min(threads == 1 ? 1 : threads * Self.partsPerThread, blocks))
    }

    /// Splits `[0, count)` into ranges whose bounds are multiples of `granule` (a few per
    /// thread) and runs `body` on each in parallel.
    public func split(count: Int, granule: Int, _ body: (Range<Int>) -> Void) {
        let blocks = (count + granule - 1) / granule
        let parts = self.parts(blocks: blocks)
        if parts == 1 { return body(0..<count) }
        parallel(parts: parts) { p, _ in
            let lo = blocks * p / parts * granule
            let hi = min(count, blocks * (p + 1) / parts * granule)
            if lo < hi { body(lo..<hi) }
        }
    }

    // MARK: - claiming parts

    /// Runs parts of job `generation` until none is left; returns how many.
    private func runParts(generation: UInt64, thread: Int) -> Int {
        guard thread < jobThreads.load(ordering: .relaxed) else { return 0 }
        var count = 0
        var current = JobState(bits: state.load(ordering: .acquiring))
        while current.generation == generation, current.next < current.parts {
            let claimed = JobState(generation: generation, next: current.next + 1, parts: current.parts)
            let (exchanged, original) = state.compareExchange(
                expected: current.bits, desired: claimed.bits,
                successOrdering: .acquiringAndReleasing, failureOrdering: .acquiring)
            guard exchanged else {
                current = JobState(bits: original)
                continue
            }
            // The job cannot end (nor `job` change) before this part is counted as finished.
            job!(current.next, thread)
            count += 1
            current = JobState(bits: state.load(ordering: .acquiring))
        }
        return count
    }

    // MARK: - helpers' side

    private func serve(_ helper: Helper, thread: Int) {
        var seen: UInt64 = 0
        cthread_name_self("compute-\(thread)")
        helper.repin.store(true, ordering: .relaxed)  // a helper made after `place(on:)` takes its CPU too
        while true {
            seen = waitForJob(helper, thread: thread, after: seen)
            let count = runParts(generation: seen, thread: thread)
            if count > 0 { finished.wrappingAdd(count, ordering: .releasing) }
        }
    }

    /// Returns the generation of a job newer than `seen` once there is one: spins while a pass
    /// runs (up to the limit), sleeps otherwise. Takes its CPU first when placement changed.
    private func waitForJob(_ helper: Helper, thread: Int, after seen: UInt64) -> UInt64 {
        var spinStart = DispatchTime.now().uptimeNanoseconds
        var spins = 0
        while true {
            let generation = JobState(bits: state.load(ordering: .acquiring)).generation
            // After the load: a job published after `place(on:)` finds the request here.
            if helper.repin.exchange(false, ordering: .acquiring) {
                let cpus = lock.withLock { placement }
                if !cpus.isEmpty { _ = cthread_pin_self(Int32(cpus[thread % cpus.count])) }
            }
            if generation != seen { return generation }
            spins += 1
            if passes.load(ordering: .relaxed) > 0 {
                if spins & 255 != 0 || DispatchTime.now().uptimeNanoseconds - spinStart < Self.spinLimitNanoseconds {
                    cthread_relax()
                    continue
                }
            }
            sleep(helper, generation: seen)
            spinStart = DispatchTime.now().uptimeNanoseconds
            spins = 0
        }
    }

    /// Sleeps until a newer job is published or a new pass starts.
    private func sleep(_ helper: Helper, generation seen: UInt64) {
        let epoch = passEpoch.load(ordering: .sequentiallyConsistent)
        pthread_mutex_lock(helper.mutex)
        helper.sleeping.store(true, ordering: .sequentiallyConsistent)
        while JobState(bits: state.load(ordering: .sequentiallyConsistent)).generation == seen
                && passEpoch.load(ordering: .sequentiallyConsistent) == epoch
                && !helper.repin.load(ordering: .sequentiallyConsistent) {
            pthread_cond_wait(helper.condition, helper.mutex)
        }
        helper.sleeping.store(false, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(helper.mutex)
    }
}
