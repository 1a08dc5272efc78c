import Graph

/// Steps a loop visits; iterating sets the step that module accesses refer to.
public struct StepSequence: Sequence {
    let steps: [Int]
    let recorder: TraceRecorder
    /// The first step the loop asked for past max_new_tokens, if any: nnsight 0.8.1 runs that
    /// iteration's body up to its first module access, then ends the loop with a warning
    /// (front ends that run the body statement by statement reproduce it).
    public var pastEnd: Int?

    public struct Iterator: IteratorProtocol {
        var inner: IndexingIterator<[Int]>
        let recorder: TraceRecorder
        public mutating func next() -> Int? {
            let step = inner.next()
            recorder.loopStep = step
            return step
        }
    }

    public func makeIterator() -> Iterator { Iterator(inner: steps.makeIterator(), recorder: recorder) }
}

/// `tracer.iter[...]`: a range, a single step, or a list of steps. Steps beyond max_new_tokens
/// are dropped, as generation never runs them.
public struct StepIndexer {
    let recorder: TraceRecorder

    private func sequence(_ steps: [Int]) -> StepSequence {
        StepSequence(steps: steps.filter { $0 >= 0 && $0 < recorder.maxNewTokens }, recorder: recorder)
    }

    /// The steps of `lower..<upper` that generation runs (never more than max_new_tokens of them).
    private func clamped(_ lower: Int, _ upper: Int) -> [Int] {
        let lo = max(lower, 0), hi = min(upper, recorder.maxNewTokens)
        return lo < hi ? Array(lo..<hi) : []
    }

    public subscript(_ r: Range<Int>) -> StepSequence { sequence(clamped(r.lowerBound, r.upperBound)) }
    public subscript(_ r: ClosedRange<Int>) -> StepSequence { sequence(clamped(r.lowerBound, r.upperBound == .max ? .max : r.upperBound + 1)) }
    public subscript(_ r: PartialRangeFrom<Int>) -> StepSequence { sequence(clamped(r.lowerBound, recorder.maxNewTokens)) }
    public subscript(_ r: PartialRangeUpTo<Int>) -> StepSequence { sequence(clamped(0, r.upperBound)) }
    public subscript(_: UnboundedRange) -> StepSequence { sequence(Array(0..<recorder.maxNewTokens)) }
    public subscript(_ step: Int) -> StepSequence { sequence([step]) }
    public subscript(_ steps: [Int]) -> StepSequence { sequence(steps) }
}

/// The object a `generate`/`trace` closure receives (nnsight's tracer).
///
/// ```swift
/// try model.generate("The Eiffel Tower is in the city of", maxNewTokens: 5) { tracer in
///     let tokens = tracer.list().save()
///     for _ in tracer.iter[1..<3] { tokens.append(model.lmHead.output[0, -1].argmax(dim: -1)) }
///     tracer.next()                                   // module accesses now refer to step 1
/// }
/// ```
public final class Tracer {
    let recorder: TraceRecorder
    let tokenize: (String) -> [Int]

    init(recorder: TraceRecorder, tokenize: @escaping (String) -> [Int]) {
        self.recorder = recorder
        self.tokenize = tokenize
    }

    /// Loops over generation steps: `for step in tracer.iter[1..<3]`, `tracer.iter[...]`, `tracer.iter[[0, 2]]`.
    public var iter: StepIndexer { StepIndexer(recorder: recorder) }

    /// Every generation step (`iter[...]`). Code after the loop runs too.
    public func all() -> StepSequence { iter[...] }

    /// The source line that nodes recorded from now on come from (set by the script front end,
    /// so that errors point at the script line).
    public var sourceLine: Int {
        get { recorder.currentLine }
        set { recorder.currentLine = max(0, newValue) }
    }

    /// The source column that nodes recorded from now on come from.
    public var sourceColumn: Int {
        get { recorder.currentColumn }
        set { recorder.currentColumn = max(0, newValue) }
    }

    /// The number of generation steps (`max_new_tokens`).
    public var maxNewTokens: Int { recorder.maxNewTokens }

    /// nnsight's `tracer.stop()`: ends the trace here. The rest of the closure does not run (this
    /// throws; the trace catches it), the current step's forward pass ends after the last module
    /// the trace used in it, and no later step runs.
    ///
    /// ```swift
    /// try model.generate("Hello", maxNewTokens: 20) { tracer in
    ///     for step in tracer.iter[...] { if step == 3 { try tracer.stop() } }
    /// }
    /// ```
    public func stop() throws {
        if recorder.condition != nil {
            recorder.problem("tracer.stop() under a condition on a traced value is not supported: stop under a plain Python condition (e.g. on the step)")
        }
        recorder.stopStep = recorder.currentStep
        throw Stop()
    }

    /// What `stop()` throws to unwind the trace's closure.
    public struct Stop: Error {}

    /// The generation step that nodes recorded now belong to.
    public var step: Int { recorder.currentStep }

    /// The invoke nodes recorded now belong to (-1: the whole batch).
    public var invokeIndex: Int { recorder.currentInvoke }

    /// Nodes recorded so far that change the model's computation (writes, replacements, skips).
    public var editCount: Int { recorder.editCount }

    /// Where a `tracer.stop()` stands in the record: its step and the next node's id.
    public var position: (step: Int, node: UInt32) { (recorder.currentStep, recorder.nextId) }

    /// nnsight's `tracer.stop()` decided on the client once values arrived (a condition on a
    /// decoded token): values recorded after `position` in program order, or for a later step,
    /// are not delivered, as if nothing after the stop ran.
    public func stopDelivering(after position: (step: Int, node: UInt32)) {
        recorder.clientStop = position
        // What arrived already (an earlier layer of the same step) was never reached either.
        for (id, saved) in recorder.saves where recorder.isAfterClientStop(id: id, step: saved.step) { saved.result = nil }
        for (id, append) in recorder.appends where id >= position.node { append.list.values[append.node] = nil }
    }

    /// Advances the step that module accesses outside loops refer to.
    public func next() { recorder.cursor += 1 }

    /// A batch entry: module values inside `body` are this prompt's rows. Without a prompt, the
    /// body sees the whole batch.
    public func invoke(_ prompt: String? = nil, _ body: () throws -> Void) rethrows {
        let saved = recorder.currentInvoke
        if let prompt {
            recorder.invokes.append(tokenize(prompt))
            recorder.invokeSizes.append(1)
            recorder.currentInvoke = recorder.invokeSizes.count - 1
        } else {
            recorder.currentInvoke = -1
        }
        defer { recorder.currentInvoke = saved }
        try body()
    }

    /// A batch entry given as token ids.
    public func invoke(tokens: [Int], _ body: () throws -> Void) rethrows {
        try invoke(batch: [tokens], body)
    }

    /// Several batch rows in one invoke (`tracer.invoke(["a", "b"])`): module values inside
    /// `body` are these rows.
    public func invoke(batch rows: [[Int]], _ body: () throws -> Void) rethrows {
        let saved = recorder.currentInvoke
        recorder.invokes += rows
        recorder.invokeSizes.append(rows.count)
        recorder.currentInvoke = recorder.invokeSizes.count - 1
        defer { recorder.currentInvoke = saved }
        try body()
    }

    /// A list that `append` fills, one value per call, returned after the trace.
    public func list() -> SavedList {
        SavedList()
    }

    /// The generated ids (prompt included), as `model.generator.output`.
    public var result: TraceValue { recorder.read(ModuleRead(.generator, .output)) }
}

extension SavedList {
    /// Records an append of `value` at the current step.
    public func append(_ value: TraceValue) {
        guard let recorder = TraceRecorder.active else { return }
        recorder.append(value, to: self)
    }
}
