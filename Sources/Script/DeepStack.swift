import Foundation

/// Runs a script on a thread of its own with a deep stack. The runner evaluates expressions
/// recursively; the parser bounds their height (Python's own RecursionError) so that no input
/// exhausts this stack, where the main thread's 8 MB ended the process at about 2,000 levels
/// (a debug build's frames are large). Only the pages the script touches are ever resident.
enum DeepStack {
    static let bytes = 1 << 30

    /// `body`'s result, computed on a thread with a `bytes` stack; the caller waits.
    static func run<T>(_ body: () -> T) -> T {
        withoutActuallyEscaping(body) { body in
            let box = Box(body)
            let done = DispatchSemaphore(value: 0)
            let thread = Thread {
                box.result = box.body?()
                box.body = nil  // released before the caller goes on: it must not outlive the call
                done.signal()
            }
            thread.stackSize = bytes
            thread.start()
            done.wait()  // (a full fence: the script's sockets and values move back with it)
            return box.result!
        }
    }

    /// Hands the body and its result between the threads; only one uses it at a time.
    private final class Box<T>: @unchecked Sendable {
        var body: (() -> T)?
        var result: T?
        init(_ body: @escaping () -> T) { self.body = body }
    }
}
