import Coordinator
import Engine
import Foundation
import Graph

extension ScriptRunner {
    // MARK: - resolution

    /// A saved value becomes its tensor once its trace has run; on the client (resolving),
    /// traced values become their tensors and deferred values their results.
    func resolved(_ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        switch v {
        case let .saved(saved, proxy):
            // In a trace the saved value is the graph's; between a session's traces, once they ran, its value.
            if tracing > 0 && !resolving && !(activeTracer == nil && saved.isSettled) { return .proxy(proxy) }
            do { return .tensor(try saved.value, grad: proxy.gradFn) } catch {
                if resolving { throw ClientWait() }
                throw fail(.runtime, error.description, loc)
            }
        case let .proxy(p) where resolving:
            return try arrived(p, grad: p.gradFn)
        case let .proxy(p) where betweenSessionTraces && !p.isTupleValue && p.saved?.isSettled == true:
            // A value of a session trace that ran (flushSession kept it).
            return try arrived(p, grad: p.gradFn)
        case let .deferred(d) where resolving || tracing == 0:
            // A client value is computed with its traced values resolved, whoever asks.
            let wasResolving = resolving
            resolving = true
            defer { resolving = wasResolving }
            return try resolved(try d.compute(), loc)
        default:
            return v
        }
    }

    func truth(_ v: PyValue, _ loc: SourceLocation) throws -> Bool {
        switch try resolved(v, loc) {
        case .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .float(f): return f != 0
        case let .str(s): return !s.isEmpty
        case let .list(l): return !l.items.isEmpty
        case let .tuple(t): return !t.isEmpty
        case let .dict(d): return !d.entries.isEmpty
        case let .size(s): return !s.isEmpty
        case let .range(a, b, s): return Self.rangeCount(a, b, s) > 0
        case let .tensor(t, _):
            guard t.count == 1 else { throw fail(.runtime, "Boolean value of Tensor with more than one value is ambiguous", loc) }
            return t.bools[0]
        case .proxy, .deferred:
            throw fail(.unsupported, "the truth of a traced value is only known while the model runs; use it in an if statement (a guarded branch)", loc)
        default: return true
        }
    }

    func iterate(_ v: PyValue, _ loc: SourceLocation) throws -> [PyValue] {
        switch try resolved(v, loc) {
        case let .list(l): return l.items
        case let .tuple(t): return t
        case let .range(a, b, s):
            let n = Self.rangeCount(a, b, s)
            guard n <= Self.maxSequence else { throw fail(.memory, "range of \(n) items is too long to build as a list (over \(Self.maxSequence))", loc) }
            return Swift.stride(from: a, to: b, by: s).map { .int($0) }
        case let .str(s): return s.map { .str(String($0)) }
        case let .size(d): return d.map { .int($0) }
        case let .dict(d): return d.entries.map(\.key)
        case let .tensor(t, grad):
            guard let n = t.shape.first else { throw fail(.type, "iteration over a 0-d tensor", loc) }
            return try (0..<n).map { i throws(OpError) in .tensor(try t[i].contiguous(), grad: grad.map { _ in "UnbindBackward0" }) }
        case let .proxy(p):
            // The first dim is static: the loop unrolls over its rows.
            if p.isTupleValue, case let .tuple(items)? = p.type {
                return try (0..<items.count).map { try subscriptProxy(p, [.at($0)], loc) }
            }
            guard let shape = p.shape else { throw fail(.type, "the length of this traced value is known only after the trace", loc) }
            guard let n = shape.first else { throw fail(.type, "iteration over a 0-d tensor", loc) }
            return try (0..<n).map { try subscriptProxy(p, [.at($0)], loc) }
        case .deferred:
            throw fail(.unsupported, "iterating over a value computed from traced values needs its length while recording; iterate over x.tolist() of a traced tensor, or over range(x.shape[d])", loc)
        case let .steps(s): return s.map { .int($0) }
        case let .iterator(it): return it.drain()
        case .object(.layers): return (0..<model.transformer.h.count).map { .object(.block(model.transformer.h[$0])) }
        default: throw fail(.type, "'\(v.typeName)' object is not iterable", loc)
        }
    }

    // MARK: - operators

    /// Characters of one string, items of one list, a script may build.
    static let maxSequence = 10_000_000

    /// A float as Python's int (truncated), refused when it does not fit 64 bits.
    func integer(_ d: Double, _ loc: SourceLocation) throws -> Int {
        guard d.isFinite else { throw fail(.value, "cannot convert float \(Repr.float(d)) to integer", loc) }
        guard d < 9.2e18, d > -9.2e18 else { throw fail(.overflow, "\(Repr.float(d)) does not fit a 64-bit int (trace scripts' ints are 64-bit)", loc) }
        return Int(d)
    }

    func number(_ v: PyValue) -> Double? {
        switch v {
        case let .int(i): Double(i)
        case let .float(f): f
        case let .bool(b): b ? 1 : 0
        default: nil
        }
    }

    static let tensorOps: [String: String] = [
        "+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow", "@": "matmul", "%": "remainder", "//": "floor_divide",
        "&": "bitwise_and", "|": "bitwise_or", "^": "bitwise_xor",
        "==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge",
    ]

    func binary(_ op: String, _ a0: PyValue, _ b0: PyValue, _ loc: SourceLocation) throws -> PyValue {
        if let lifted = try lift([a0, b0], loc, graph: { [self] in
            guard let name = Self.tensorOps[op], let x = graphForm(a0), let y = graphForm(b0) else { return nil }
            return TraceValue.applyIfTyped(name, [x, y])
        }, { [self] in try binary(op, a0, b0, loc) }) { return lifted }
        let a = try resolved(a0, loc), b = try resolved(b0, loc)
        if isTensorLike(a) || isTensorLike(b) {
            guard let name = Self.tensorOps[op] else { throw fail(.unsupported, "operator \(op) on tensors is not supported", loc) }
            return try torchOp(name, [a, b], Attributes(), loc)
        }
        return try plainBinary(op, a, b, loc)
    }

    func isTensorLike(_ v: PyValue) -> Bool {
        switch v {
        case .tensor, .proxy, .saved: true
        default: false
        }
    }

    func plainBinary(_ op: String, _ a: PyValue, _ b: PyValue, _ loc: SourceLocation) throws -> PyValue {
        switch (op, a, b) {
        case let ("+", .str(x), .str(y)):
            guard x.utf8.count + y.utf8.count <= Self.maxSequence else { throw fail(.memory, "the string would have over \(Self.maxSequence) characters", loc) }
            return .str(x + y)
        case let ("+", .list(x), .list(y)):
            guard x.items.count + y.items.count <= Self.maxSequence else { throw fail(.memory, "the list would have over \(Self.maxSequence) items", loc) }
            return .list(PyList(x.items + y.items))
        case let ("+", .tuple(x), .tuple(y)): return .tuple(x + y)
        case let ("*", .str(x), .int(n)), let ("*", .int(n), .str(x)):
            guard n <= 0 || x.count <= Self.maxSequence / n else { throw fail(.memory, "the string would have over \(Self.maxSequence) characters", loc) }
            let repeated = String(repeating: x, count: max(0, n))
            if repeated.utf8.count > ScriptLimits.memoryCheckInterval { try checkMemory(loc) }
            return .str(repeated)
        case let ("*", .list(x), .int(n)), let ("*", .int(n), .list(x)):
            guard n <= 0 || x.items.count <= Self.maxSequence / n else { throw fail(.memory, "the list would have over \(Self.maxSequence) items", loc) }
            let items = Array([[PyValue]](repeating: x.items, count: max(0, n)).joined())
            if items.count > ScriptLimits.memoryCheckInterval { try checkMemory(loc) }
            return .list(PyList(items))
        case let ("%", .str(x), v): return .str(try percentFormat(x, v, loc))
        default: break
        }
        if case let .int(x) = a.asInt, case let .int(y) = b.asInt, !(a.isFloat || b.isFloat) {
            switch op {
            case "+": return .int(try checked(x.addingReportingOverflow(y), x, op, y, loc))
            case "-": return .int(try checked(x.subtractingReportingOverflow(y), x, op, y, loc))
            case "*": return .int(try checked(x.multipliedReportingOverflow(by: y), x, op, y, loc))
            case "/":
                guard y != 0 else { throw fail(.zeroDivision, "division by zero", loc) }
                return .float(Double(x) / Double(y))
            case "//", "%":
                guard y != 0 else { throw fail(.zeroDivision, op == "%" ? "integer modulo by zero" : "integer division or modulo by zero", loc) }
                guard !(x == .min && y == -1) else { throw fail(.overflow, "\(x) \(op) \(y) does not fit a 64-bit int (trace scripts' ints are 64-bit)", loc) }
                // Python's floor division and modulo: the remainder takes the divisor's sign.
                var (q, r) = x.quotientAndRemainder(dividingBy: y)
                if r != 0 && ((r < 0) != (y < 0)) { q -= 1; r += y }
                return .int(op == "//" ? q : r)
            case "**":
                guard y >= 0 else { return .float(pow(Double(x), Double(y))) }
                var result = 1, base = x, e = y
                while e > 0 {
                    if e & 1 == 1 {
                        result = try checked(result.multipliedReportingOverflow(by: base), x, op, y, loc)
                    }
                    e >>= 1
                    if e > 0 {
                        base = try checked(base.multipliedReportingOverflow(by: base), x, op, y, loc)
                    }
                }
                return .int(result)
            case "&": return .int(x & y)
            case "|": return .int(x | y)
            case "^": return .int(x ^ y)
            default: break
            }
        }
        guard let x = number(a), let y = number(b) else {
            throw fail(.type, "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'", loc)
        }
        switch op {
        case "+": return .float(x + y)
        case "-": return .float(x - y)
        case "*": return .float(x * y)
        case "/":
            guard y != 0 else { throw fail(.zeroDivision, "float division by zero", loc) }
            return .float(x / y)
        case "//":
            guard y != 0 else { throw fail(.zeroDivision, "float floor division by zero", loc) }
            return .float((x / y).rounded(.down))
        case "%":
            guard y != 0 else { throw fail(.zeroDivision, "float modulo by zero", loc) }
            return .float(x - y * (x / y).rounded(.down))
        case "**": return .float(pow(x, y))
        default: throw fail(.type, "unsupported operand type(s) for \(op): '\(a.typeName)' and '\(b.typeName)'", loc)
        }
    }

    /// An int operation's result, or Python's OverflowError where ours would wrap (Python's ints
    /// are unbounded; a script's are 64-bit).
    func checked(_ r: (partialValue: Int, overflow: Bool), _ x: Int, _ op: String, _ y: Int, _ loc: SourceLocation) throws -> Int {
        guard !r.overflow else { throw fail(.overflow, "\(x) \(op) \(y) does not fit a 64-bit int (trace scripts' ints are 64-bit)", loc) }
        return r.partialValue
    }

    /// `"%d items" % n`, `"%s=%.3f" % (a, b)`.
    func percentFormat(_ format: String, _ args: PyValue, _ loc: SourceLocation) throws -> String {
        var values: [PyValue] = { if case let .tuple(t) = args { return t } else { return [args] } }()
        var out = ""
        var chars = Array(format)[...]
        while let c = chars.popFirst() {
            guard c == "%" else { out.append(c); continue }
            var spec = ""
            while let d = chars.first, !"sdifreEgGx%".contains(d) { spec.append(d); chars.removeFirst() }
            guard let type = chars.popFirst() else { throw fail(.value, "incomplete format", loc) }
            if type == "%" { out.append("%"); continue }
            guard !values.isEmpty else { throw fail(.type, "not enough arguments for format string", loc) }
            let v = values.removeFirst()
            switch type {
            case "s": out += try Format.apply(spec, to: .str(try str(v, loc)), self, loc)
            case "r": out += try Format.apply(spec, to: .str(try repr(v, loc)), self, loc)
            case "i": out += try Format.apply(spec + "d", to: v, self, loc)
            default: out += try Format.apply(spec + String(type), to: v, self, loc)
            }
        }
        guard values.isEmpty else { throw fail(.type, "not all arguments converted during string formatting", loc) }
        return out
    }

    /// A comparison: tensors (and traced values) compare elementwise; Python values as Python.
    func compareValue(_ op: String, _ a1: PyValue, _ b1: PyValue, _ loc: SourceLocation) throws -> PyValue {
        // A container compared later is compared as it is at this point of the program: a copy
        // of it now, or (while changes to containers wait for values) the comparison runs at its
        // place among them.
        let ordered = !resolving && tracing > 0 && pending.contains(where: \.mutation)
        let (a0, b0) = !resolving && tracing > 0 && !ordered ? (snapshot(a1), snapshot(b1)) : (a1, b1)
        if ordered, ["in", "not in", "==", "!="].contains(op), [a1, b1].contains(where: { if case .list = $0 { true } else if case .dict = $0 { true } else { false } }) {
            let d = Deferred(needs: needs(of: a1) + needs(of: b1)) { [unowned self] in try compareValue(op, a1, b1, loc) }
            observe(d.needs)
            pending.append(ClientAction(needs: d.needs, condition: nil, mutation: true) { d.fixed = try d.compute() })
            return .deferred(d)
        }
        if op == "is" || op == "is not" {
            let same = try identical(a0, b0)
            return .bool(op == "is" ? same : !same)
        }
        if let lifted = try lift([a0, b0], loc, graph: { [self] in
            if op == "in" || op == "not in" { return membershipGraph(op, a0, b0) }
            guard let name = Self.tensorOps[op], let x = graphForm(a0), let y = graphForm(b0) else { return nil }
            return TraceValue.applyIfTyped(name, [x, y])
        }, { [self] in try compareValue(op, a0, b0, loc) }) { return lifted }
        // A Python container holding values that arrive later (`tok in seen`): compared then.
        if !resolving, tracing > 0, ["in", "not in", "==", "!="].contains(op),
           [a0, b0].contains(where: { v in
               switch v { case .list, .tuple, .dict: !needs(of: v).isEmpty; default: false }
           }) {
            return deferred([a0, b0]) { [unowned self] in try compareValue(op, a0, b0, loc) }
        }
        let a = try resolved(a0, loc), b = try resolved(b0, loc)
        if let name = Self.tensorOps[op], isTensorLike(a) || isTensorLike(b) {
            return try torchOp(name, [a, b], Attributes(), loc)
        }
        return .bool(try compare(op, a, b, loc))
    }

    /// A shallow copy of a list or dict (other values as they are).
    func snapshot(_ v: PyValue) -> PyValue {
        switch v {
        case let .list(l): return .list(PyList(l.items))
        case let .dict(d): return .dict(PyDict(d.entries))
        default: return v
        }
    }

    /// `x.item() in [5, 17]` as a tensor expression (`(x == tensor([5, 17])).any()`), so that it
    /// can guard what the model computes; nil unless the list holds plain numbers.
    func membershipGraph(_ op: String, _ a: PyValue, _ b: PyValue) -> TraceValue? {
        guard let x = graphForm(a) else { return nil }
        let items: [PyValue]
        switch b {
        case let .list(l): items = l.items
        case let .tuple(t): items = t
        default: return nil
        }
        guard !items.isEmpty else { return nil }
        var numbers: [Double] = []
        var integral = true
        for item in items {
            switch item {
            case let .int(i): numbers.append(Double(i))
            case let .float(f): numbers.append(f); integral = false
            case let .bool(v): numbers.append(v ? 1 : 0)
            default: return nil
            }
        }
        let constant = integral ? Tensor(shape: [numbers.count], ints: numbers.map { Int64($0) }) : Tensor(shape: [numbers.count], floats: numbers.map { Float($0) })
        guard let hits = TraceValue.applyIfTyped("eq", [TraceValue.applyIfTyped("flatten", [x]) ?? x, .constant(constant)]),
              let any = TraceValue.applyIfTyped("any", [hits]) else { return nil }
        return op == "in" ? any : TraceValue.applyIfTyped("bitwise_not", [any])
    }

    /// `is`: None, bools and the same object.
    func identical(_ a: PyValue, _ b: PyValue) throws -> Bool {
        switch (a, b) {
        case (.none, .none): return true
        case let (.bool(x), .bool(y)): return x == y
        case let (.list(x), .list(y)): return x === y
        case let (.dict(x), .dict(y)): return x === y
        case let (.proxy(x), .proxy(y)): return x === y
        case (.none, _), (_, .none), (.bool, _), (_, .bool): return false
        default: return (try? equal(a, b)) ?? false
        }
    }

    func compare(_ op: String, _ a: PyValue, _ b: PyValue, _ loc: SourceLocation) throws -> Bool {
        switch op {
        case "in", "not in":
            let found: Bool
            switch b {
            case let .str(s):
                guard case let .str(sub) = a else { throw fail(.type, "'in <string>' requires string as left operand, not \(a.typeName)", loc) }
                found = sub.isEmpty || s.contains(sub)
            case let .dict(d): found = d.index(of: a) != nil
            default: found = try iterate(b, loc).contains { item in (try? equal(a, try resolved(item, loc))) ?? false }
            }
            return op == "in" ? found : !found
        case "==": return try equal(a, b)
        case "!=": return !(try equal(a, b))
        default: break
        }
        if case let .str(x) = a, case let .str(y) = b {
            switch op { case "<": return x < y; case "<=": return x <= y; case ">": return x > y; default: return x >= y }
        }
        if case let .list(x) = a, case let .list(y) = b { return try compareSequences(op, x.items, y.items, loc) }
        if case let .tuple(x) = a, case let .tuple(y) = b { return try compareSequences(op, x, y, loc) }
        guard let x = number(a), let y = number(b) else {
            throw fail(.type, "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'", loc)
        }
        switch op { case "<": return x < y; case "<=": return x <= y; case ">": return x > y; default: return x >= y }
    }

    func compareSequences(_ op: String, _ x: [PyValue], _ y: [PyValue], _ loc: SourceLocation) throws -> Bool {
        for (u, v) in zip(x, y) where !(try equal(u, v)) { return try compare(op, u, v, loc) }
        switch op { case "<": return x.count < y.count; case "<=": return x.count <= y.count; case ">": return x.count > y.count; default: return x.count >= y.count }
    }

    func equal(_ a: PyValue, _ b: PyValue, depth: Int = 0) throws -> Bool {
        guard depth < 100 else { throw ScriptError(.recursion, "maximum recursion depth exceeded in comparison", file: file, line: 0, column: 0) }
        switch (a, b) {
        case (.none, .none): return true
        case let (.str(x), .str(y)): return x == y
        case let (.list(x), .list(y)):
            if x === y { return true }
            return try x.items.count == y.items.count && zip(x.items, y.items).allSatisfy { try equal($0, $1, depth: depth + 1) }
        case let (.tuple(x), .tuple(y)): return try x.count == y.count && zip(x, y).allSatisfy { try equal($0, $1, depth: depth + 1) }
        case let (.size(x), .size(y)): return x == y
        case let (.size(x), .tuple(y)), let (.tuple(y), .size(x)):
            return x.count == y.count && zip(x, y).allSatisfy { if case let .int(i) = $1 { i == $0 } else { false } }
        case let (.dtype(x), .dtype(y)): return x == y
        case let (.tensor(t, _), other), let (other, .tensor(t, _)):
            guard t.count == 1, let x = number(other) else { return false }
            return t.doubles[0] == x
        default:
            if let x = number(a), let y = number(b) { return x == y }
            return false
        }
    }

    // MARK: - repr and str

    /// Items' reprs joined by ", ", refused once the text passes `maxSequence` characters (a list
    /// of a million long strings would otherwise print terabytes).
    func joinedRepr<Item>(_ items: [Item], _ loc: SourceLocation, _ itemRepr: (Item) throws -> String) throws -> String {
        var out = ""
        for (i, item) in items.enumerated() {
            if i > 0 { out += ", " }
            out += try itemRepr(item)
            guard out.utf8.count <= Self.maxSequence else { throw fail(.memory, "the repr would have over \(Self.maxSequence) characters", loc) }
        }
        return out
    }

    func repr(_ v0: PyValue, _ loc: SourceLocation) throws -> String {
        let v = try resolved(v0, loc)
        // A container inside itself prints as [...] / {...}, as Python does.
        let identity: ObjectIdentifier? = switch v {
        case let .list(l): ObjectIdentifier(l)
        case let .dict(d): ObjectIdentifier(d)
        default: nil
        }
        if let identity {
            guard !reprActive.contains(identity) else { if case .list = v { return "[...]" } else { return "{...}" } }
            guard reprActive.count < 100 else { throw fail(.recursion, "maximum recursion depth exceeded while getting the repr of an object", loc) }
            reprActive.insert(identity)
        }
        defer { if let identity { reprActive.remove(identity) } }
        switch v {
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .float(f): return Repr.float(f)
        case let .str(s): return Repr.string(s)
        case let .list(l): return "[" + (try joinedRepr(l.items, loc) { try repr($0, loc) }) + "]"
        case let .tuple(t): return "(" + (try joinedRepr(t, loc) { try repr($0, loc) }) + (t.count == 1 ? ",)" : ")")
        case let .dict(d): return "{" + (try joinedRepr(d.entries, loc) { (try repr($0.key, loc)) + ": " + (try repr($0.value, loc)) }) + "}"
        case let .tensor(t, grad): return TorchRepr.repr(t, grad: grad)
        case let .size(d): return "torch.Size([" + d.map(String.init).joined(separator: ", ") + "])"
        case let .range(a, b, s): return s == 1 ? "range(\(a), \(b))" : "range(\(a), \(b), \(s))"
        case let .dtype(d): return "torch.\(d.rawValue)"
        case .proxy: return "InterventionProxy(traced value)"
        case .deferred: return "<client value>"
        case .object(.model): return ModuleRepr.model(model.config)
        case .object(.transformer): return ModuleRepr.module(.transformer, model.config)
        case .object(.layers): return ModuleRepr.module(.layerList, model.config)
        case .object(.generator): return ModuleRepr.module(.generator, model.config)
        case let .object(.block(b)): return ModuleRepr.module(b.module, model.config)
        case let .object(.module(m)): return ModuleRepr.module(m.module, model.config)
        case .object(.namespace("torch.Tensor")): return "<class 'torch.Tensor'>"
        case let .object(.namespace(n)) where n.hasPrefix("class:"): return "<class '\(n.dropFirst(6))'>"
        case let .object(.namespace(n)): return "<module '\(n)'>"
        case .object: return "<Envoy>"
        case .steps: return "<iterator>"
        case let .builtin(n) where PyValue.typeNames.contains(n): return "<class '\(n)'>"
        case let .builtin(n): return "<built-in function \(n)>"
        case let .method(_, n): return "<bound method \(n)>"
        case let .function(f): return "<function \(f.name)>"
        case let .unsaved(n): return "<unsaved \(n)>"
        case .saved: return "<saved>"
        case let .slice(a, b, c): return "slice(\([a, b, c].map { $0.map(String.init) ?? "None" }.joined(separator: ", ")))"
        case .iterator: return "<list_iterator object>"
        }
    }

    func str(_ v0: PyValue, _ loc: SourceLocation) throws -> String {
        let v = try resolved(v0, loc)
        if case let .str(s) = v { return s }
        return try repr(v, loc)
    }

    /// An f-string: computed now, or on the client when a part is traced.
    func formatted(_ parts: [(PyValue, Character?, String, SourceLocation)], _ loc: SourceLocation) throws -> PyValue {
        if !resolving, tracing > 0, parts.contains(where: { isTraced($0.0) }) {
            return deferred(parts.map(\.0)) { [unowned self] in try formatted(parts, loc) }
        }
        var out = ""
        for (value, conversion, spec, at) in parts {
            let v = try resolved(value, at)
            if conversion == "r" { out += try Format.apply(spec, to: .str(try repr(v, at)), self, at) }
            else if conversion == "s" { out += try Format.apply(spec, to: .str(try str(v, at)), self, at) }
            else { out += try Format.apply(spec, to: v, self, at) }
        }
        return .str(out)
    }
}

extension ScriptRunner {
    /// The length of `range(a, b, s)` (s != 0), without overflow.
    static func rangeCount(_ a: Int, _ b: Int, _ s: Int) -> Int {
        if s > 0 {
            guard b > a else { return 0 }
            return Int(min((UInt(bitPattern: b &- a) - 1) / UInt(s) + 1, UInt(Int.max)))
        }
        guard a > b else { return 0 }
        return Int(min((UInt(bitPattern: a &- b) - 1) / s.magnitude + 1, UInt(Int.max)))
    }
}

extension PyValue {
    /// Ints and bools as an int (Python's bool is an int).
    var asInt: PyValue {
        switch self {
        case let .bool(b): .int(b ? 1 : 0)
        default: self
        }
    }

    var isFloat: Bool { if case .float = self { true } else { false } }

    /// Builtins that are types (`type(x)` gives one).
    static let typeNames: Set<String> = ["int", "float", "str", "bool", "list", "dict", "tuple", "NoneType", "range", "function"]
}
