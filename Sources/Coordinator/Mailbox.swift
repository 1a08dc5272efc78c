import Foundation

/// Values handed from other threads to a serving loop, which takes them all at its next turn.
///
/// ```swift
/// let mailbox = Mailbox<Int>()
/// DispatchQueue.global().async { mailbox.post(42) }
/// for value in mailbox.drain() { handle(value) }   // on the loop
/// ```
final class Mailbox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Value] = []

    func post(_ value: Value) { lock.withLock { values.append(value) } }

    /// Everything posted so far, oldest first.
    func drain() -> [Value] {
        lock.withLock {
            defer { values = [] }
            return values
        }
    }
}
