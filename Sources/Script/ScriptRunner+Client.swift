import Coordinator
import Foundation
import Graph

/// A value a deferred computation needs has not arrived yet.
struct ClientWait: Error {}

/// Work the client does once traced values arrive (a `print` inside a trace), in program order.
struct ClientAction {
    /// Values to wait for (each arrives, or is known not to come).
    let needs: [TraceValue]
    /// The guard of the branch it sits in: it runs only if the branch ran.
    let condition: TraceValue?
    let run: () throws -> Void
}

/// Client-side evaluation: Python code on traced values that does not flow back into the model
/// runs on the client when the values arrive (nnsight runs it on real tensors during the
/// forward pass). While recording, such code yields `Deferred` values; `print` queues an action.
/// The values it needs are observed (saved for the client only), and the queue runs in program
/// order as each step's values stream in.
extension ScriptRunner {
    /// Whether `v` is (or holds) a value that exists only while the model runs.
    func isTraced(_ v: PyValue) -> Bool {
        switch v {
        case .proxy, .deferred: return true
        case .saved: return tracing > 0 && !resolving
        default: return false
        }
    }

    /// The traced values `v` needs to be computed on the client.
    func needs(of v: PyValue, depth: Int = 0) -> [TraceValue] {
        guard depth < 64 else { return [] }  // containers nested that deep (or inside themselves)
        switch v {
        case let .proxy(p) where p.isTupleValue: return tupleItems(p).compactMap { $0 }
        case let .proxy(p): return [p]
        case let .saved(_, p): return tracing > 0 ? [p] : []
        case let .deferred(d): return d.needs
        case let .list(l): return l.items.flatMap { needs(of: $0, depth: depth + 1) }
        case let .tuple(t): return t.flatMap { needs(of: $0, depth: depth + 1) }
        case let .dict(d): return d.entries.flatMap { needs(of: $0.value, depth: depth + 1) }
        case let .method(base, _): return needs(of: base, depth: depth + 1)
        default: return []
        }
    }

    /// The items of a tuple output (`(hidden,)`, `(attn_output, None)`) as values, made once.
    func tupleItems(_ p: TraceValue) -> [TraceValue?] {
        if let items = tupleItemCache[ObjectIdentifier(p)] { return items }
        guard !resolving, case let .tuple(types)? = p.type else { return [] }
        let items: [TraceValue?] = types.enumerated().map { i, type in
            guard type != nil else { return nil }
            let item = p.index([.at(i)])
            item.gradFn = p.gradFn
            return item
        }
        tupleItemCache[ObjectIdentifier(p)] = items
        return items
    }

    /// Asks the trace to send these values to the client (a save nobody sees).
    func observe(_ values: [TraceValue]) {
        for p in values where p.saved == nil { _ = p.save() }
    }

    /// The value as a graph node, when it is one or a number computed from one.
    func graphForm(_ v: PyValue) -> TraceValue? {
        switch v {
        case let .proxy(p), let .saved(_, p): return p
        case let .deferred(d): return d.graph
        case let .int(i): return .constant(i)
        case let .float(f): return .constant(f)
        case let .bool(b): return .constant(Tensor(shape: [], bools: [b]))
        default: return nil
        }
    }

    /// While recording, an operation on deferred values becomes a deferred value itself: the
    /// same operation, run again on the client with the traced values resolved.
    func lift(_ operands: [PyValue], _ loc: SourceLocation, graph: (() -> TraceValue?)? = nil,
              _ compute: @escaping () throws -> PyValue) throws -> PyValue? {
        guard !resolving, tracing > 0, operands.contains(where: { if case .deferred = $0 { true } else { false } }) else { return nil }
        return .deferred(Deferred(needs: operands.flatMap { needs(of: $0) }, graph: graph, compute: compute))
    }

    /// A deferred Python value computed from traced values (`x.item()`, `x.tolist()`, `str(x)`).
    func deferred(_ operands: [PyValue], graph: (() -> TraceValue?)? = nil, _ compute: @escaping () throws -> PyValue) -> PyValue {
        .deferred(Deferred(needs: operands.flatMap { needs(of: $0) }, graph: graph, compute: compute))
    }

    /// `print(...)` inside a trace: runs now if nothing it needs is traced and nothing is
    /// waiting; otherwise queued, to run when its values arrive (once per step in a loop).
    func clientPrint(_ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation,
                     _ printNow: @escaping () throws -> Void) throws {
        var wanted = args.flatMap { needs(of: $0) } + kwargs.values.flatMap { needs(of: $0) }
        let condition = activeTracer?.currentCondition
        if let condition { wanted.append(condition) }
        if wanted.isEmpty && pending.isEmpty { return try printNow() }
        observe(wanted)
        pending.append(ClientAction(needs: wanted, condition: condition, run: printNow))
    }

    /// Runs the queued actions whose values have arrived, in order. At the end of the trace,
    /// actions whose values never came (a step not reached, a branch not taken) are dropped.
    func drainClientActions(final: Bool) {
        let wasResolving = resolving
        resolving = true
        defer { resolving = wasResolving }
        while let action = pending.first {
            let settled = action.needs.allSatisfy { $0.saved?.isSettled ?? true }
            if !settled && !final { return }
            pending.removeFirst()
            // A value that never came (a step not reached, a branch not taken) drops the action.
            do {
                if let condition = action.condition, !(try guardTaken(condition)) { continue }
                try action.run()
            } catch is ClientWait {
                continue
            } catch {
                if clientError == nil { clientError = error }
            }
        }
    }

    /// A traced value's value on the client (once it has arrived).
    func arrived(_ p: TraceValue, grad: String?) throws -> PyValue {
        if p.isTupleValue {
            guard let items = tupleItemCache[ObjectIdentifier(p)] else { throw ClientWait() }
            return .tuple(try items.map { item in try item.map { try arrived($0, grad: $0.gradFn) } ?? PyValue.none })
        }
        guard let saved = p.saved, saved.isSettled else { throw ClientWait() }
        do { return .tensor(try saved.value, grad: grad) } catch { throw ClientWait() }
    }
}
