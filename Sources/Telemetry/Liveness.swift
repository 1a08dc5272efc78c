import Foundation
import Synchronization

/// When a serving loop last turned, for `/healthz`: a loop stuck longer than `stallSeconds`
/// (a deadlock, a wedged socket) is not live, and an orchestrator restarts the process.
public final class Liveness: Sendable {
    private let lastTick = Atomic<UInt64>(DispatchTime.now().uptimeNanoseconds)
    /// Longer than any one step: a worker loading GPT-2 XL's 6 GB, or a long prompt's pass.
    public let stallSeconds: Double

    public init(stallSeconds: Double = 120) { self.stallSeconds = stallSeconds }

    /// The loop turned (called every iteration: one relaxed store).
    public func tick() { lastTick.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }

    public var isLive: Bool {
        Double(DispatchTime.now().uptimeNanoseconds &- lastTick.load(ordering: .relaxed)) / 1e9 < stallSeconds
    }
}
