import Graph

extension TraceValue {
    /// The static type (shape and dtype), known while the trace is recorded; nil for values whose
    /// shape only exists afterwards (`model.generator.output`, whose length depends on eos).
    public var type: ValueType? {
        if let literal { return .tensor(literal.type) }
        guard let r = recorder else { return nil }
        if r !== TraceRecorder.active, case let .success(value)? = saved?.result {
            return .tensor(value.type)
        }
        return r.staticType(nodeId)
    }

    /// The static shape of a tensor value (`x.shape` inside a trace).
    public var shape: [Int]? {
        if case let .tensor(t)? = type { return t.shape }
        return nil
    }

    /// A tensor the front end holds, saved inside a trace: a constant whose saved value is itself.
    public static func kept(_ value: Tensor) -> (TraceValue, Saved) {
        let v = TraceValue.constant(value)
        let s = Saved.holding(value)
        v.saved = s
        return (v, s)
    }

    /// Whether this value is a tuple (a module's tuple output, or an op with several outputs).
    public var isTupleValue: Bool { isTuple }

    /// Records `name` of the op registry on `inputs`: the one way every torch op becomes a node.
    ///
    /// ```swift
    /// let probs = TraceValue.apply("softmax", [model.lmHead.output], Attributes(["dim": .int(-1)]))
    /// ```
    public static func apply(_ name: String, _ inputs: [TraceValue], _ attributes: Attributes = Attributes()) -> TraceValue {
        guard let r = TraceRecorder.active else { return inputs.first ?? .constant(0) }
        var ids: [UInt32] = []
        for input in inputs {
            guard let id = input.node(in: r) else { return TraceValue(recorder: r, node: 0, isTuple: false) }
            ids.append(id)
        }
        guard let spec = OpRegistry.spec(name) else {
            r.problem("unknown op '\(name)'")
            return TraceValue(recorder: r, node: 0, isTuple: false)
        }
        do throws(OpError) { try spec.validate(inputs: ids.count, attributes: attributes) } catch {
            r.problem(error.description)
            return TraceValue(recorder: r, node: 0, isTuple: false)
        }
        return r.op(name, ids, attributes)
    }
}

extension TraceValue {
    /// `apply`, but nil (and nothing recorded) when the op's type rule refuses these inputs: for
    /// optional graph forms of client-side values.
    public static func applyIfTyped(_ name: String, _ inputs: [TraceValue], _ attributes: Attributes = Attributes()) -> TraceValue? {
        guard let r = TraceRecorder.active, let spec = OpRegistry.spec(name) else { return nil }
        let types = inputs.map(\.type)
        guard types.allSatisfy({ $0 != nil }), (try? spec.validate(inputs: inputs.count, attributes: attributes)) != nil,
              (try? spec.type(types.map { $0! }, attributes)) != nil else { return nil }
        for input in inputs where input.literal == nil && input.recorder !== r { return nil }
        return apply(name, inputs, attributes)
    }
}

extension Tracer {
    /// A guarded region (Python's `if` on a traced value): the nodes `body` records run only
    /// where `condition` (one element) is nonzero; saves in a branch that does not run are
    /// absent afterwards. `otherwise` records the `else` branch.
    ///
    /// ```swift
    /// let big = TraceValue.apply("gt", [model.lmHead.output.max(), .constant(10.0)])
    /// tracer.when(big) { model.transformer.h[0].output[0][.all] = 0 }
    /// ```
    public func when(_ condition: TraceValue, _ body: () throws -> Void, otherwise: (() throws -> Void)? = nil) throws {
        guard let id = condition.node(in: recorder) else { return }
        let c = recorder.truth(id)
        try recorder.guarded(by: c, body)
        if let otherwise { try recorder.guarded(by: recorder.negation(c), otherwise) }
    }

    /// The guard of the region being recorded, as a value (nil outside guarded regions).
    public var currentCondition: TraceValue? {
        recorder.condition.map { TraceValue(recorder: recorder, node: $0, isTuple: false) }
    }

    /// Records the following nodes under `condition` (a value `when` or `truth` made), for front
    /// ends that walk `if`/`elif`/`else` chains themselves.
    public func guarded(by condition: TraceValue?, _ body: () throws -> Void) rethrows {
        try recorder.guarded(by: condition.flatMap { $0.node(in: recorder) }, body)
    }

    /// `bool(value)` as a 0-d bool node (one element, checked statically).
    public func truth(_ value: TraceValue) -> TraceValue? {
        value.node(in: recorder).map { TraceValue(recorder: recorder, node: recorder.truth($0), isTuple: false) }
    }

    /// `not value` for a bool node.
    public func negation(_ value: TraceValue) -> TraceValue? {
        value.node(in: recorder).map { TraceValue(recorder: recorder, node: recorder.negation($0), isTuple: false) }
    }

    /// Tells the recorder the batch's prompts before their invokes are recorded (a front end
    /// that can see them ahead), so that shapes read in the first invoke are already padded.
    public func plan(prompts: [String]) {
        plan(tokens: prompts.map(tokenize))
    }

    /// `plan(prompts:)` for prompts given as token ids.
    public func plan(tokens: [[Int]]) {
        recorder.plannedLengths = tokens.map(\.count)
    }

    /// The first problem recorded so far (a shape mismatch, a bad module path), with its line:column.
    public var firstProblem: TraceError? { recorder.problems.first }
}
