import Graph

/// A value saved in a trace (`.save()`), filled in when the trace has run.
///
/// ```swift
/// var output: Saved!
/// try model.generate("Hello", maxNewTokens: 3) { tracer in output = model.generator.output.save() }
/// print(try output.value.shape)   // [1, T + 3]
/// ```
public final class Saved {
    let step: Int
    var result: Result<Tensor, TraceError>?
    /// Where the value comes from when its trace belongs to a session that has not run yet: a
    /// later trace of the same session takes it on the coordinator (no round trip).
    var origin: SessionOrigin?
    /// Its static type, known when it was recorded.
    public internal(set) var type: ValueType?

    init(step: Int) { self.step = step }

    /// A value a script already holds, saved inside a trace (`torch.zeros(3).save()`).
    public static func holding(_ value: Tensor) -> Saved {
        let s = Saved(step: 0)
        s.result = .success(value)
        return s
    }

    /// False when generation stopped before the step that computes the value, or when the
    /// value sits in a guarded branch that did not run.
    public var wasReached: Bool { result != nil }
    /// The save sits in a guarded branch (`if` on a traced value) that did not run.
    public internal(set) var skipped = false
    /// Whether the trace has said what became of this value (it arrived, or its branch did not run).
    public var isSettled: Bool { result != nil || skipped }

    /// The saved tensor; throws when generation stopped before the step that computes it, or
    /// when the trace failed.
    public var value: Tensor {
        get throws(TraceError) {
            switch result {
            case let .success(v)?: return v
            case let .failure(e)?: throw e
            case nil:
                if let origin, origin.session?.hasRun == false {
                    throw TraceError(.runtime, "this value comes from a trace of a session that has not run yet: the session's traces run when its block ends, so use the value after it (or inside a later trace of the session)", step: step)
                }
                if skipped { throw TraceError(.stepNotReached, "the value was not computed: the branch of the `if` that saves it did not run", step: step) }
                throw TraceError.stepNotReached(step: step)
            }
        }
    }
}

/// A list built in a trace (`tracer.list().save()` + `append`), in step order.
public final class SavedList {
    private var slots: [(slot: UInt32, step: Int)] = []
    var values: [UInt32: Tensor] = [:]

    func expect(slot: UInt32, step: Int) { slots.append((slot, step)) }

    /// The appended values that exist, in the order the trace appended them. Appends at steps
    /// generation never reached are absent (as in nnsight).
    public var items: [Tensor] { slots.compactMap { values[$0.slot] } }
    public var count: Int { items.count }
    public subscript(_ i: Int) -> Tensor { items[i] }

    /// nnsight's `.save()` on a list: the list itself.
    @discardableResult public func save() -> SavedList { self }
}

/// Which session trace saves a value, and under which id. Weak: the session's recorders hold
/// their saves, which must not keep the session alive in turn.
struct SessionOrigin {
    weak var session: SessionRecording?
    let trace: Int
    let saveID: UInt32
}

/// The traces of a `model.session { ... }` block, recorded but not yet run: they go to the
/// coordinator as one submission when the block ends.
public final class SessionRecording {
    var traces: [(generation: GenerationSpec, recorder: TraceRecorder)] = []
    public internal(set) var hasRun = false
}
