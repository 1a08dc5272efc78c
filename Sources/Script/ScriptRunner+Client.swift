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
    /// A change to a Python container (`list.append`, `d[k] = v`): later changes wait behind it.
    var mutation = false
    /// The conditions only the client can evaluate (on decoded text, Python lists) of the
    /// branches it sits in: it runs only if they hold.
    var clientCondition: (() throws -> Bool)? = nil
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
        var wanted = args.flatMap { needs(of: $0) } + kwargs.values.flatMap { needs(of: $0) } + clientGuardNeeds
        let condition = activeTracer?.currentCondition
        if let condition { wanted.append(condition) }
        if wanted.isEmpty && pending.isEmpty { return try printNow() }
        observe(wanted)
        pending.append(ClientAction(needs: wanted, condition: condition, clientCondition: clientGuard, run: printNow))
    }

    /// A change to a Python container (`list.append`, `dict[k] = v`, `pop`, `+=` on an item):
    /// inside a branch guarded by a traced condition it happens only if the branch runs, so it
    /// waits for the condition's value (nnsight runs the branch on real values); once one
    /// waits, later changes queue behind it so that they keep program order. `result` is what
    /// the call returns while recording.
    func mutate(_ result: PyValue = .none, _ change: @escaping () throws -> Void) throws -> PyValue {
        guard !resolving, tracing > 0 else { try change(); return result }
        let condition = activeTracer?.currentCondition
        guard condition != nil || clientGuard != nil || pending.contains(where: \.mutation) else { try change(); return result }
        let wanted = (condition.map { [$0] } ?? []) + clientGuardNeeds
        observe(wanted)
        pending.append(ClientAction(needs: wanted, condition: condition, mutation: true, clientCondition: clientGuard, run: change))
        return result
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
            // A client-side tracer.stop() ended the trace: nothing after it in the program runs.
            if clientStopped { continue }
            // A value that never came (a step not reached, a branch not taken) drops the action.
            do {
                if let condition = action.condition, !(try guardTaken(condition)) { continue }
                if let condition = action.clientCondition, !(try condition()) { continue }
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

extension ScriptRunner {
    /// `items[k] += v` on a list or dict while changes to containers wait (in a guarded branch,
    /// or behind one): the read, the operation and the write happen together when the change
    /// runs, so repeated increments (one per step) add up as they do in Python. False when the
    /// statement is not such a change (the caller runs it as usual).
    func augAssignItem(_ target: Expr, _ op: String, _ value: Expr, _ loc: SourceLocation) throws -> Bool {
        guard !resolving, tracing > 0, case let .subscript(baseExpr, items) = target.kind,
              activeTracer?.currentCondition != nil || clientGuard != nil || pending.contains(where: \.mutation),
              items.count == 1, case let .index(indexExpr) = items[0] else { return false }
        let container = try eval(baseExpr)
        let key = try resolved(try eval(indexExpr), indexExpr.location)
        let operand = try eval(value)
        switch container {
        case let .list(list):
            guard case let .int(i) = key else { throw fail(.type, "list indices must be integers or slices, not \(key.typeName)", indexExpr.location) }
            _ = try mutate {
                let k = i < 0 ? i + list.items.count : i
                guard k >= 0, k < list.items.count else { throw self.fail(.index, "list index out of range", loc) }
                list.items[k] = try self.binary(op, list.items[k], operand, loc)
            }
        case let .dict(dict):
            guard PyDict.hashKey(key) != nil else { throw fail(.type, "unhashable type: '\(key.typeName)'", indexExpr.location) }
            _ = try mutate {
                guard let current = dict[key] else { throw self.fail(.key, try self.repr(key, loc), loc) }
                dict[key] = try self.binary(op, current, operand, loc)
            }
        default: return false
        }
        return true
    }
}
