import Coordinator
import Engine
import Foundation
import Graph

/// A `with tracer.invoke(...)` block met in a trace's body, run when that body has run.
struct WaitingInvoke {
    let prompts: [[Int]]?
    let body: [Stmt]
}

extension ScriptRunner {
    // MARK: - with blocks

    func enter(_ context: PyValue, as name: Expr?, body: [Stmt], at loc: SourceLocation) throws {
        if case let .steps(sequence) = context {
            // nnsight still accepts the block form, with a deprecation warning.
            warn("NNsightDeprecationWarning", "The `with tracer.iter[...]:` / `with tracer.all():` block form is deprecated; use `for step in tracer.iter[...]:` instead.", loc)
            for step in sequence {
                if let name { try assign(name, .int(step)) }
                try exec(body)
            }
            forwardCursor.removeAll()  // as after a `for` over steps
            return
        }
        guard case let .object(object) = context else {
            throw fail(.type, "'\(context.typeName)' object does not support the context manager protocol", loc)
        }
        switch object {
        case let .editContext(edits, inplace):
            // The block is stored, not run: it runs at the start of every later trace of the
            // model it edits (a copy's, or the model's own with inplace=True).
            let target = inplace ? edits : EditSet(edits.blocks)
            var tracerName: Expr? = name
            if !inplace, let name {
                guard case let .tuple(items) = name.kind, items.count == 2 else {
                    throw fail(.type, "model.edit() gives (tracer, edited_model): write `with model.edit() as (tracer, edited):`", loc)
                }
                tracerName = items[0]
                try assign(items[1], .object(.editedModel(target)))
            }
            target.blocks.append((body, tracerName))
        case let .generateContext(prompts, options, edits):
            try runTrace(at: loc) {
                // transformers' generate() runs under torch.no_grad(): its values carry no grad_fn.
                let previous = (gradEnabled, generating)
                (gradEnabled, generating) = (false, true)
                defer { (gradEnabled, generating) = previous }
                try model.generate(maxNewTokens: options.maxNewTokens, sampling: options.sampling, eosTokenId: options.eosTokenId,
                                   padTokenId: options.padTokenId) { tracer in
                    try record(tracer, as: name, body, prompts: prompts, edits: edits)
                }
            }
        case let .traceContext(prompts, edits):
            try runTrace(at: loc) {
                try model.trace { tracer in try record(tracer, as: name, body, prompts: prompts, edits: edits) }
            }
        case let .scanContext(prompts, edits):
            // Values never arrive: what waits for one (a print of a tensor) is dropped, as a
            // branch not taken; shapes are known while recording.
            try runTrace(at: loc) {
                try model.scan { tracer in try record(tracer, as: name, body, prompts: prompts, edits: edits) }
            }
        case .sessionContext:
            // The body's traces are recorded, then run as one submission; client work (prints,
            // values of saved tensors) runs in program order as their values stream back.
            inSession = true
            defer { inSession = false }
            try runTrace(at: loc) {
                try model.session {
                    if let name { try assign(name, .object(.sessionContext)) }
                    try exec(body)
                }
            }
        case let .invokeContext(tracer, prompts):
            // As in nnsight, an invoke's body runs once the trace's body has run, when the whole
            // batch is known (its shapes see the padded length of every invoke's prompt).
            if tracer === activeTracer, waitingInvokes != nil {
                waitingInvokes?.append(WaitingInvoke(prompts: prompts, body: body))
                return
            }
            try runInvoke(tracer, prompts, body)
        case .noGrad:
            let previous = gradEnabled
            gradEnabled = false
            defer { gradEnabled = previous }
            if let name { try assign(name, .none) }
            try exec(body)
        default:
            throw fail(.type, "this object does not support the context manager protocol", loc)
        }
    }

    /// Records the with-block. `prompts`: what generate/trace was given, one batch row each; one
    /// prompt is the body's invoke, several a batch the body sees whole.
    private func record(_ tracer: Tracer, as name: Expr?, _ body: [Stmt], prompts: [[Int]], edits: EditSet) throws {
        activeTracer = tracer
        if let name { try assign(name, .object(.tracer(tracer))) }
        /// The model's edits, first: on the whole batch, before anything the trace itself does.
        func replayEdits() throws {
            replayingEdits = true
            defer { replayingEdits = false }
            for block in edits.blocks {
                if let target = block.tracer { try assign(target, .object(.tracer(tracer))) }
                try exec(block.body)
            }
        }
        if prompts.count == 1 {
            tracer.plan(tokens: prompts)
            try tracer.invoke(tokens: prompts[0]) {
                try replayEdits()
                try exec(body)
            }
        } else {
            for prompt in prompts { tracer.invoke(tokens: prompt) {} }
            let outer = waitingInvokes
            waitingInvokes = []
            defer { waitingInvokes = outer }
            try exec(body)  // tracer.stop() here ends the trace: its invokes never run
            let invokes = waitingInvokes ?? []
            waitingInvokes = nil
            tracer.plan(tokens: prompts + invokes.flatMap { $0.prompts ?? [] })
            if !edits.blocks.isEmpty { try tracer.invoke(nil) { try replayEdits() } }
            for invoke in invokes { try runInvoke(tracer, invoke.prompts, invoke.body) }
        }
        try checkRecording(SourceLocation(line: tracer.sourceLine, column: tracer.sourceColumn))
    }

    private func runInvoke(_ tracer: Tracer, _ prompts: [[Int]]?, _ body: [Stmt]) throws {
        if let prompts { try tracer.invoke(batch: prompts) { try exec(body) } } else { try tracer.invoke(nil) { try exec(body) } }
    }


    /// Runs a recorded trace. While its values stream in, client work runs in program order;
    /// afterwards, names bound to proxies that were not saved are marked, and saved client values
    /// take their computed values.
    func runTrace(at loc: SourceLocation, _ body: () throws -> Void) throws {
        if inSession && tracing > 0 {
            // A trace inside a session: recorded now, run (and its values settled) with the session.
            tracing += 1
            defer {
                tracing -= 1
                activeTracer = nil
            }
            return try body()
        }
        tracing += 1
        let previousEvents = model.onEvent
        model.onEvent = { [unowned self] event in
            previousEvents?(event)
            drainClientActions(final: false)
        }
        defer {
            model.onEvent = previousEvents
            tracing -= 1
            activeTracer = nil
            pending.removeAll()
            clientStopped = false
            finishTrace()
            if tracing == 0 {
                boundInTrace = []
                savedNames = []
                forwardCursor = [:]
                userSaved = []
                tupleItemCache = [:]
            }
        }
        do {
            try body()
            drainClientActions(final: true)
        } catch let error as ScriptError {
            throw error
        } catch let error as TraceError {
            // Errors name the node's script position: point there.
            var at = loc
            if let line = error.line, line > 0 { at = SourceLocation(line: line, column: error.column ?? 1) }
            throw fail(error.kind == .invalidGraph ? .type : error.kind == .overBudget ? .memory : .runtime, error.description, at)
        }
        if let error = clientError {
            clientError = nil
            throw error
        }
    }

    /// After a trace: unsaved proxies become markers, saved client values their values, and
    /// appends that never happened (steps not reached, branches not taken) leave their lists.
    func finishTrace() {
        let wasResolving = resolving
        resolving = true
        settlingAfterTrace = true
        defer { (resolving, settlingAfterTrace) = (wasResolving, false) }
        // A client-side tracer.stop(): the names bound after it were never bound.
        if let stop = clientStopPoint {
            for binding in bindings.reversed() where binding.point > stop { globals[binding.name] = binding.previous }
        }
        if tracing <= 1 { (bindings, clientStopPoint) = ([], nil) }
        for (name, value) in globals {
            switch value {
            case let .proxy(p) where userSaved.contains(ObjectIdentifier(p)) && p.saved != nil:
                globals[name] = p.saved.map { .saved($0, p) }
            case .object(.modelOutput(.saved)), .object(.cache): break
            case .proxy, .object(.tracer), .object(.modelOutput): globals[name] = .unsaved(name)
            case let .deferred(d) where d.saved:
                globals[name] = settledValue(d)
            case .deferred: globals[name] = .unsaved(name)
            case let .saved(saved, _) where saved.skipped:
                // Saved in a branch that did not run: the name was never bound (as in nnsight).
                globals[name] = nil
            case let .saved(_, p) where boundInTrace.contains(name) && !userSaved.contains(ObjectIdentifier(p)) && !savedNames.contains(name):
                // An item of a list the trace filled (kept for the list), bound to a name the
                // script never saved: nnsight leaves the name behind.
                globals[name] = nil
            case .saved: break
            case let .list(list) where boundInTrace.contains(name) && !list.saved: globals[name] = nil
            case let .dict(dict) where boundInTrace.contains(name) && !dict.saved: globals[name] = nil
            case let .list(list):
                var visited = Set<ObjectIdentifier>()
                settle(list, visited: &visited)
            case let .dict(dict):
                for (i, entry) in dict.entries.enumerated() { if case let .deferred(d) = entry.value { dict.entries[i].value = settledValue(d) ?? .none } }
            default:
                // Plain values bound inside the trace (loop variables, temporaries) stay there.
                if boundInTrace.contains(name) && !savedNames.contains(name) { globals[name] = nil }
            }
        }
    }

    func settle(_ list: PyList, visited: inout Set<ObjectIdentifier>) {
        guard visited.insert(ObjectIdentifier(list)).inserted else { return }
        list.items = list.items.compactMap { item in
            switch item {
            case let .saved(saved, _): return saved.wasReached ? item : nil
            case let .deferred(d): return settledValue(d)
            case let .list(inner): settle(inner, visited: &visited); return item
            default: return item
            }
        }
    }

    /// A deferred value computed now that the trace is over (nil when a value it needs never came).
    func settledValue(_ d: Deferred) -> PyValue? {
        guard let v = try? d.compute() else { return nil }
        return plain(v)
    }

    /// A value with the client values inside it computed (nil when one cannot be).
    func plain(_ v: PyValue, depth: Int = 0) -> PyValue? {
        guard depth < 64 else { return nil }
        switch v {
        case let .deferred(d): return settledValue(d)
        case let .tuple(items):
            let out = items.compactMap { plain($0, depth: depth + 1) }
            return out.count == items.count ? .tuple(out) : nil
        default: return v
        }
    }

    // MARK: - guards

    /// `if`/`elif`/`else`: plain conditions choose while recording; a traced condition makes a
    /// guarded region for each branch (the graph runs the branch where its condition holds).
    func execIf(_ branches: [(Expr, [Stmt])], _ orelse: [Stmt]?) throws {
        var noneTaken: TraceValue?  // the condition that no traced branch so far was taken
        for (index, (test, body)) in branches.enumerated() {
            let value = try inBranch(noneTaken) { try eval(test) }
            if isTraced(value), !resolving {
                guard let tracer = activeTracer else { throw fail(.runtime, "a traced value outside its trace", test.location) }
                guard let g = graphForm(value) else {
                    guard noneTaken == nil else {
                        throw fail(.unsupported, "an elif on a value only the client can evaluate (a string, a list) after a condition on a traced tensor: split the if statement", test.location)
                    }
                    return try execClientBranches(Array(branches[index...]), orelse, first: value)
                }
                tracer.sourceLine = test.location.line
                tracer.sourceColumn = test.location.column
                let pair = try inBranch(noneTaken) { () -> (TraceValue, TraceValue)? in
                    guard let c = tracer.truth(g) else { return nil }
                    return (c, noneTaken.map { TraceValue.apply("bitwise_and", [$0, c]) } ?? c)
                }
                try checkRecording(test.location)
                guard let (c, condition) = pair else { continue }
                try inBranch(condition) { try exec(body) }
                let notC = try inBranch(noneTaken) { tracer.negation(c) } ?? c
                noneTaken = try inBranch(nil) { noneTaken.map { TraceValue.apply("bitwise_and", [$0, notC]) } ?? notC }
                continue
            }
            if try truth(value, test.location) {
                try inBranch(noneTaken) { try exec(body) }
                return
            }
        }
        if let orelse { try inBranch(noneTaken) { try exec(orelse) } }
    }

    /// `if` on a value only the client can evaluate (decoded text, membership in a Python list,
    /// numbers from `.item()`): the client decides once the values arrive, as nnsight decides on
    /// real values while the model runs. Such a branch may print, change Python values and stop
    /// the trace (`tracer.stop()`: what comes after it is not delivered); it cannot edit the model,
    /// whose forward pass does not wait for the client.
    func execClientBranches(_ branches: [(Expr, [Stmt])], _ orelse: [Stmt]?, first: PyValue) throws {
        var earlier: [() throws -> Bool] = []
        var earlierNeeds: [TraceValue] = []
        func noneEarlier(_ conditions: [() throws -> Bool]) -> () throws -> Bool {
            { for c in conditions where try c() { return false }; return true }
        }
        for (i, (test, body)) in branches.enumerated() {
            let value = i == 0 ? first : try eval(test)
            if isTraced(value), graphForm(value) != nil, case .deferred = value {} else if isTraced(value), graphForm(value) != nil {
                throw fail(.unsupported, "an elif on a traced tensor after a condition only the client can evaluate: split the if statement", test.location)
            }
            let wanted = needs(of: value)
            observe(wanted)
            let holds: () throws -> Bool = { [unowned self] in try truth(try resolved(value, test.location), test.location) }
            let none = noneEarlier(earlier)
            try withClientGuard({ try none() && holds() }, needs: earlierNeeds + wanted, at: test.location) { try exec(body) }
            earlier.append(holds)
            earlierNeeds += wanted
        }
        if let orelse { try withClientGuard(noneEarlier(earlier), needs: earlierNeeds, at: branches[0].0.location) { try exec(orelse) } }
    }

    /// Runs `body` under a condition only the client evaluates (with the enclosing ones).
    func withClientGuard(_ condition: @escaping () throws -> Bool, needs: [TraceValue], at loc: SourceLocation, _ body: () throws -> Void) throws {
        let (outer, outerNeeds) = (clientGuard, clientGuardNeeds)
        defer { (clientGuard, clientGuardNeeds) = (outer, outerNeeds) }
        clientGuard = { try (outer?() ?? true) && condition() }
        clientGuardNeeds = outerNeeds + needs
        let edits = activeTracer?.editCount ?? 0
        try body()
        if let tracer = activeTracer, tracer.editCount != edits {
            throw fail(.unsupported, "a branch on a value only the client can evaluate (a string, a list, a number from .item()) edits the model here; the forward pass does not wait for the client: write the condition as a tensor expression (e.g. (tok == 5).any()) to guard an edit", loc)
        }
    }

    /// Runs `body` with the graph's nodes guarded by `condition` (with the enclosing guard).
    func inBranch<T>(_ condition: TraceValue?, _ body: () throws -> T) throws -> T {
        guard let condition, let tracer = activeTracer else { return try body() }
        var result: T?
        try tracer.guarded(by: condition) { result = try body() }
        return result!
    }

    /// A plain value assigned inside a guarded branch takes effect only where the branch runs:
    /// the client decides once the guard's value has arrived.
    func guardedAssignment(_ name: String, _ value: PyValue) throws -> PyValue {
        if !resolving, let condition = clientGuard {
            let previous = lookup(name) ?? .none
            let chosen = Deferred(needs: clientGuardNeeds + needs(of: value) + needs(of: previous)) { [unowned self] in
                // After the trace, a condition whose values never came (a step not reached) did not hold.
                let taken: Bool
                do { taken = try condition() } catch is ClientWait where settlingAfterTrace { taken = false }
                return try taken ? resolved(value, SourceLocation(line: 0, column: 0)) : resolved(previous, SourceLocation(line: 0, column: 0))
            }
            if case let .deferred(d) = value { chosen.saved = d.saved }
            return .deferred(chosen)
        }
        guard !resolving, let tracer = activeTracer, let guardValue = tracer.currentCondition else { return value }
        switch value {
        case .proxy, .saved, .list, .dict, .object, .function, .steps, .builtin, .method: return value
        default: break
        }
        let previous = lookup(name) ?? .none
        observe([guardValue])
        let chosen = Deferred(needs: [guardValue] + needs(of: value) + needs(of: previous)) { [unowned self] in
            try guardTaken(guardValue) ? resolved(value, SourceLocation(line: 0, column: 0)) : resolved(previous, SourceLocation(line: 0, column: 0))
        }
        if case let .deferred(d) = value { chosen.saved = d.saved }  // nnsight.save(...) in the branch
        return .deferred(chosen)
    }

    /// Whether a guard's branch ran (its observed value arrived true).
    func guardTaken(_ g: TraceValue) throws -> Bool {
        guard let saved = g.saved, saved.isSettled else {
            if settlingAfterTrace { return false }  // a step not reached: the branch did not run
            throw ClientWait()
        }
        guard let t = try? saved.value else { return false }
        return t.count == 1 && t.bools[0]
    }

    /// Throws the first problem the recorder found (a shape mismatch, a bad path) at its line:column.
    func checkRecording(_ loc: SourceLocation) throws {
        guard let problem = activeTracer?.firstProblem else { return }
        let at = problem.line.map { SourceLocation(line: $0, column: problem.column ?? 1) } ?? loc
        throw fail(problem.exception == .indexError ? .index : .type, problem.message, at)
    }
}
