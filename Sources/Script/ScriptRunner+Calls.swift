import Coordinator
import Engine
import Foundation
import Graph

extension ScriptRunner {
    func call(_ f: PyValue, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        switch f {
        case .deferred where !resolving && tracing > 0:
            // A method of a client value (`text.strip` of decoded text): called when it exists.
            return deferred([f] + args + kwargs.values.map { $0 }) { [unowned self] in try call(try resolved(f, loc), args, kwargs, loc) }
        case let .function(function):
            return try callFunction(function, args, kwargs, loc)
        case .object(.tokenizer):
            return try tokenizerCall(args, kwargs, loc)
        case .object(.barrier):
            try expectKeywords([], kwargs, "barrier", loc)
            guard args.isEmpty else { throw fail(.type, "a barrier is called without arguments", loc) }
            return .none
        case let .object(object) where envoy(object) != nil && object.isModule:
            return try callModule(envoy(object)!, args, kwargs, loc)
        case let .builtin(name):
            if !resolving, tracing > 0, needsClient(name, args + kwargs.values.map { $0 }) {
                return deferred(args + kwargs.values.map { $0 }) { [unowned self] in try builtin(name, args, kwargs, loc) }
            }
            return try builtin(name, args, kwargs, loc)
        case let .method(.object(.namespace(ns)), name):
            return try namespaceCall(ns, name, args, kwargs, loc)
        case let .method(base, name):
            return try methodCall(f, base, name, args, kwargs, loc)
        default:
            throw fail(.type, "'\(f.typeName)' object is not callable", loc)
        }
    }

    /// Refuses keywords a call does not take (Python's TypeError).
    func expectKeywords(_ allowed: Set<String>, _ kwargs: [String: PyValue], _ what: String, _ loc: SourceLocation) throws {
        if let bad = kwargs.keys.sorted().first(where: { !allowed.contains($0) }) {
            throw fail(.type, "\(what)() got an unexpected keyword argument '\(bad)'", loc)
        }
    }

    /// An int argument (None: absent).
    func intArg(_ v: PyValue?, _ name: String, _ loc: SourceLocation) throws -> Int? {
        guard let v else { return nil }
        switch try resolved(v, loc) {
        case let .int(i): return i
        case .none: return nil
        default: throw fail(.type, "\(name) must be an integer", loc)
        }
    }

    /// `base.name(...)`: the model's, a tracer's, the tokenizer's, a tensor's or a Python value's method.
    func methodCall(_ f: PyValue, _ base0: PyValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        let base: PyValue
        if resolving, case .deferred = base0 { base = try resolved(base0, loc) } else { base = base0 }
        // Pure operations on client values become client values; a list's append does not.
        if case .deferred = base, let lifted = try lift([base] + args, loc, { [self] in try call(f, args, kwargs, loc) }) { return lifted }
        if case .str = base, let lifted = try lift(args, loc, { [self] in try call(f, args, kwargs, loc) }) { return lifted }
        if case .str = base, !resolving, tracing > 0, args.contains(where: { !needs(of: $0).isEmpty && !isTensorLike($0) }) {
            return deferred(args) { [unowned self] in try call(f, args, kwargs, loc) }
        }
        switch (base, name) {
        case (.object(.model), _), (.object(.editedModel), _):
            if let value = try modelMethod(base, name, args, kwargs, loc) { return value }
        case let (.object(.tracer(t)), _):
            if let value = try tracerMethod(t, name, args, kwargs, loc) { return value }
        case (.object(.tokenizer), _):
            if let value = try tokenizerMethod(f, name, args, kwargs, loc) { return value }
        case let (.object(object), "skip") where object.isModule:
            return try skipModule(envoy(object)!, args, kwargs, loc)
        case let (.object(.cache(cache, nil, _)), _):
            return try cacheMethod(cache, name, args, loc)
        case (.proxy, _), (.saved, _), (.tensor, _):
            return try tensorMethod(base, name, args, kwargs, loc)
        case let (.list(list), _): return try listMethod(list, base, name, args, loc)
        case let (.str(s), _): return try stringMethod(s, name, args, kwargs, loc)
        case let (.dict(d), _): return try dictMethod(d, base, name, args, loc)
        case let (.object(.modelOutput(logits)), "save"): return .object(.modelOutput(try saveValue(logits, loc)))
        case let (.float(x), "is_integer"): return .bool(x == x.rounded())
        case let (.size(s), "numel"): return .int(s.reduce(1, *))
        default: break
        }
        if name == "save" { return try saveValue(base, loc) }
        throw fail(.attribute, "'\(base.typeName)' object has no attribute '\(name)'", loc)
    }

    /// The model's methods (an edited model's: its edits replay in its traces); nil for none.
    func modelMethod(_ base: PyValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue? {
        func expectKeywords(_ allowed: Set<String>, _ what: String) throws { try self.expectKeywords(allowed, kwargs, what, loc) }
        func intArg(_ v: PyValue?, _ name: String) throws -> Int? { try self.intArg(v, name, loc) }
        let edits: EditSet
        if case let .object(.editedModel(set)) = base { edits = set } else { edits = modelEdits }
        switch name {
        case "edit":
            try expectKeywords(["inplace", "backend"], name)
            let inplace = try kwargs["inplace"].map { try truth($0, loc) } ?? false
            guard tracing == 0 else { throw fail(.unsupported, "model.edit() inside a trace", loc) }
            return .object(.editContext(edits, inplace: inplace))
        case "clear_edits":
            try expectKeywords([], name)
            edits.blocks.removeAll()
            return PyValue.none
        case "session":
            try expectKeywords(["remote"], name)
            guard tracing == 0 else { throw fail(.unsupported, "a session cannot be opened inside a trace or another session", loc) }
            return .object(.sessionContext)
        case "generate", "trace", "scan":
            try expectKeywords(["max_new_tokens", "do_sample", "temperature", "top_k", "top_p", "seed", "repetition_penalty",
                                "eos_token_id", "pad_token_id", "remote", "scan", "validate"], name)
            guard tracing == 0 || (inSession && activeTracer == nil) else { throw fail(.unsupported, "nested traces are not supported", loc) }
            guard args.count <= 1 else { throw fail(.unsupported, "one prompt (or one list of prompts) per call; use tracer.invoke(...) for a batch", loc) }
            let prompts = try args.first.map { try promptRows($0, loc) } ?? []
            if name == "trace" { return .object(.traceContext(prompts: prompts, edits: edits)) }
            if name == "scan" { return .object(.scanContext(prompts: prompts, edits: edits)) }
            var options = GenerateOptions()
            options.maxNewTokens = try intArg(kwargs["max_new_tokens"], "max_new_tokens") ?? 20
            guard options.maxNewTokens >= 1 else { throw fail(.value, "max_new_tokens must be at least 1", loc) }
            if case .bool(true)? = kwargs["do_sample"] {
                options.sampling.temperature = Float(number(kwargs["temperature"] ?? .float(1)) ?? 1)
                options.sampling.topK = try intArg(kwargs["top_k"], "top_k") ?? 0
                options.sampling.topP = Float(number(kwargs["top_p"] ?? .float(1)) ?? 1)
                options.sampling.seed = UInt64(try intArg(kwargs["seed"], "seed") ?? 0)
                // top_k=1 is argmax whatever the temperature (and needs no random draw).
                if options.sampling.topK == 1 { options.sampling = SamplingParameters() }
            }
            if let p = kwargs["repetition_penalty"] {
                guard let value = number(p), value > 0 else { throw fail(.value, "repetition_penalty has to be a strictly positive float", loc) }
                options.sampling.repetitionPenalty = Float(value)
            }
            options.eosTokenId = try intArg(kwargs["eos_token_id"], "eos_token_id")
            options.padTokenId = try intArg(kwargs["pad_token_id"], "pad_token_id")
            return .object(.generateContext(prompts: prompts, options: options, edits: edits))
        default: return nil
        }
    }

    /// A tracer's methods; nil for none.
    func tracerMethod(_ t: Tracer, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue? {
        func expectKeywords(_ allowed: Set<String>, _ what: String) throws { try self.expectKeywords(allowed, kwargs, what, loc) }
        func intArg(_ v: PyValue?, _ name: String) throws -> Int? { try self.intArg(v, name, loc) }
        switch name {
        case "all":
            try expectKeywords([], name)
            return .steps(t.all())
        case "cache":
            guard args.isEmpty else { throw fail(.type, "cache() takes keyword arguments", loc) }
            return try cacheCall(t, kwargs, loc)
        case "stop" where clientGuard != nil || t.currentCondition != nil:
            // Under a condition on values (traced, or only the client's): decided on the client
            // once they arrive; what the trace records after this point is not delivered.
            try expectKeywords([], name)
            if let condition = t.currentCondition { observe([condition]) }
            let position = t.position
            programPoint += 1
            let point = programPoint
            observe(clientGuardNeeds)
            // A change to containers: later ones wait behind it (and are dropped if it stops).
            pending.append(ClientAction(needs: clientGuardNeeds, condition: t.currentCondition, mutation: true, clientCondition: clientGuard) { [unowned self] in
                t.stopDelivering(after: position)
                clientStopped = true
                clientStopPoint = point
            })
            return PyValue.none
        case "stop":
            try expectKeywords([], name)
            recordAt(loc)
            try checkRecording(loc)
            do { try t.stop() } catch let stop as Tracer.Stop {
                try checkRecording(loc)
                throw stop
            }
            return PyValue.none
        case "barrier":
            try expectKeywords([], name)
            guard args.count == 1, let n = try intArg(args[0], "n"), n >= 1 else {
                throw fail(.type, "barrier() takes the number of invokes that meet at it (an int, at least 1)", loc)
            }
            return .object(.barrier(t, participants: n))
        case "next":
            try expectKeywords(["step"], name)
            t.next()
            return PyValue.none
        case "invoke":
            try expectKeywords([], name)
            if let first = args.first {
                // Several prompts make one invoke of several rows (its values are [n, ...]).
                return .object(.invokeContext(t, prompts: try promptRows(first, loc)))
            }
            return .object(.invokeContext(t, prompts: nil))
        default: return nil
        }
    }

    /// The tokenizer's methods; nil for none.
    func tokenizerMethod(_ f: PyValue, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue? {
        func expectKeywords(_ allowed: Set<String>, _ what: String) throws { try self.expectKeywords(allowed, kwargs, what, loc) }
        switch name {
        case "decode", "batch_decode", "convert_ids_to_tokens":
            try expectKeywords(["skip_special_tokens", "clean_up_tokenization_spaces"], name)
            guard let arg = args.first else { throw fail(.type, "\(name)() missing the token ids", loc) }
            if !resolving, tracing > 0, !needs(of: arg).isEmpty {
                return deferred([arg]) { [unowned self] in try call(f, args, kwargs, loc) }
            }
            if name == "batch_decode" {
                return .list(PyList(try iterate(arg, loc).map { .str(model.tokenizer.decode(try decodable($0, name, loc))) }))
            }
            if name == "convert_ids_to_tokens" {
                return .list(PyList(try decodable(arg, name, loc).map { .str(model.tokenizer.decode([$0])) }))
            }
            return .str(model.tokenizer.decode(try decodable(arg, name, loc)))
        case "encode":
            try expectKeywords(["add_special_tokens", "return_tensors"], name)
            guard case let .str(s)? = args.first else { throw fail(.type, "encode() takes a string", loc) }
            return .list(PyList(model.tokenizer.encode(s).map { .int($0) }))
        default: return nil
        }
    }

    /// Builtins that read their arguments' values run on the client when one is a client
    /// value; structural ones (len, zip, range, ...) work on the static structure.
    func needsClient(_ name: String, _ args: [PyValue]) -> Bool {
        switch name {
        case "print", "isinstance", "len", "range", "zip", "enumerate", "list", "tuple", "dict", "reversed":
            return false
        case "sum", "min", "max", "sorted", "str", "repr", "round", "abs", "int", "float", "bool", "any", "all", "set", "type", "map", "filter":
            return args.contains { v in
                if case .deferred = v { return true }
                switch v {
                case .list, .tuple, .dict: return needs(of: v).contains { _ in true } && !isTensorLike(v)
                default: return false
                }
            }
        default:
            return args.contains { if case .deferred = $0 { true } else { false } }
        }
    }

    func namespaceCall(_ ns: String, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        switch ns {
        case "nnsight":
            switch name {
            case "save":
                guard args.count == 1 else { throw fail(.type, "nnsight.save() takes one value", loc) }
                return try saveValue(args[0], loc)
            case "list": return .list(PyList())
            default: throw fail(.attribute, "module 'nnsight' has no attribute '\(name)' (or it is not supported in trace scripts)", loc)
            }
        case "math":
            guard let x = args.first.flatMap({ number((try? resolved($0, loc)) ?? .none) }) else {
                if let first = args.first, isTraced(first) { return deferred(args) { [unowned self] in try namespaceCall(ns, name, args, kwargs, loc) } }
                throw fail(.type, "math.\(name)() takes a number", loc)
            }
            switch name {
            case "sqrt":
                guard x >= 0 else { throw fail(.value, "math domain error", loc) }
                return .float(x.squareRoot())
            case "log":
                guard x > 0 else { throw fail(.value, "math domain error", loc) }
                if args.count > 1, let b = number(try resolved(args[1], loc)) { return .float(Foundation.log(x) / Foundation.log(b)) }
                return .float(Foundation.log(x))
            case "exp": return .float(Foundation.exp(x))
            case "floor": return .int(try integer(x.rounded(.down), loc))
            case "ceil": return .int(try integer(x.rounded(.up), loc))
            case "fabs": return .float(Swift.abs(x))
            case "isnan": return .bool(x.isNaN)
            case "isinf": return .bool(x.isInfinite)
            case "isfinite": return .bool(x.isFinite)
            case "tanh": return .float(Foundation.tanh(x))
            case "pow":
                guard args.count == 2, let y = number(try resolved(args[1], loc)) else { throw fail(.type, "math.pow() takes two numbers", loc) }
                return .float(Foundation.pow(x, y))
            default: throw fail(.attribute, "module 'math' has no attribute '\(name)' (or it is not supported in trace scripts)", loc)
            }
        case "torch", "torch.nn.functional", "torch.nn":
            return try torchFunction(name, args, kwargs, loc)
        default:
            throw fail(.attribute, "'\(ns)' has no attribute '\(name)'", loc)
        }
    }

    // MARK: - functions

    func callFunction(_ function: PyFunction, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        guard callDepth < Self.maxCallDepth else {
            throw fail(.recursion, "maximum recursion depth exceeded (\(Self.maxCallDepth) calls) in '\(function.name)'", loc)
        }
        guard args.count <= function.params.count else {
            throw fail(.type, "\(function.name)() takes \(function.params.count) positional arguments but \(args.count) were given", loc)
        }
        var scope = function.captured
        for (i, param) in function.params.enumerated() {
            if i < args.count {
                guard kwargs[param.name] == nil else { throw fail(.type, "\(function.name)() got multiple values for argument '\(param.name)'", loc) }
                scope[param.name] = args[i]
            } else if let v = kwargs[param.name] {
                scope[param.name] = v
            } else if let d = function.defaults[i] {
                scope[param.name] = d
            } else {
                throw fail(.type, "\(function.name)() missing 1 required positional argument: '\(param.name)'", loc)
            }
        }
        if let bad = kwargs.keys.sorted().first(where: { k in !function.params.contains { $0.name == k } }) {
            throw fail(.type, "\(function.name)() got an unexpected keyword argument '\(bad)'", loc)
        }
        callDepth += 1
        locals.append(scope)
        defer {
            locals.removeLast()
            callDepth -= 1
        }
        switch function.body {
        case let .expression(e): return try eval(e)
        case let .statements(body):
            do { try exec(body) } catch let Flow.returnValue(v) { return v }
            catch Flow.breakLoop { throw fail(.syntax, "'break' outside loop", loc) }
            catch Flow.continueLoop { throw fail(.syntax, "'continue' not properly in loop", loc) }
            return .none
        }
    }

    // MARK: - methods of Python values

    func listMethod(_ list: PyList, _ base: PyValue, _ name: String, _ args: [PyValue], _ loc: SourceLocation) throws -> PyValue {
        switch name {
        case "append":
            guard args.count == 1 else { throw fail(.type, "append() takes exactly one argument (\(args.count) given)", loc) }
            let item = try appendable(args[0], loc)
            return try mutate { list.items.append(item) }
        case "extend":
            guard args.count == 1 else { throw fail(.type, "extend() takes exactly one argument", loc) }
            let items = try iterate(args[0], loc).map { try appendable($0, loc) }
            return try mutate { list.items += items }
        case "insert":
            guard args.count == 2, case let .int(i) = args[0] else { throw fail(.type, "insert() takes an index and a value", loc) }
            let item = try appendable(args[1], loc)
            return try mutate {
                let k = min(max(i < 0 ? i + list.items.count : i, 0), list.items.count)
                list.items.insert(item, at: k)
            }
        case "pop":
            let i: Int = { if case let .int(i)? = args.first { return i } else { return -1 } }()
            func position() throws -> Int {
                guard !list.items.isEmpty else { throw fail(.index, "pop from empty list", loc) }
                let k = i < 0 ? i + list.items.count : i
                guard k >= 0, k < list.items.count else { throw fail(.index, "pop index out of range", loc) }
                return k
            }
            // While recording, the item it would take now (the branch may not run).
            let current = list.items.isEmpty ? PyValue.none : list.items[try position()]
            return try mutate(current) { list.items.remove(at: try position()) }
        case "index":
            guard let v = args.first, let k = try list.items.firstIndex(where: { try equal($0, v) }) else { throw fail(.value, "value is not in list", loc) }
            return .int(k)
        case "count":
            guard let v = args.first else { throw fail(.type, "count() takes exactly one argument", loc) }
            return .int(try list.items.filter { try equal($0, v) }.count)
        case "reverse": return try mutate { list.items.reverse() }
        case "sort":
            return try mutate { list.items = try list.items.sorted { try self.compare("<", try self.resolved($0, loc), try self.resolved($1, loc), loc) } }
        case "remove":
            guard args.count == 1 else { throw fail(.type, "remove() takes exactly one argument (\(args.count) given)", loc) }
            let v = args[0]
            return try mutate {
                guard let k = try list.items.firstIndex(where: { try self.equal($0, v) }) else { throw self.fail(.value, "list.remove(x): x not in list", loc) }
                list.items.remove(at: k)
            }
        case "copy": return .list(PyList(list.items))
        case "clear": return try mutate { list.items.removeAll() }
        case "save": return try saveValue(base, loc)
        default: throw fail(.attribute, "'list' object has no attribute '\(name)'", loc)
        }
    }

    func dictMethod(_ dict: PyDict, _ base: PyValue, _ name: String, _ args: [PyValue], _ loc: SourceLocation) throws -> PyValue {
        switch name {
        case "keys": return .list(PyList(dict.entries.map(\.key)))
        case "values": return .list(PyList(dict.entries.map(\.value)))
        case "items": return .list(PyList(dict.entries.map { .tuple([$0.key, $0.value]) }))
        case "get":
            guard let key = args.first else { throw fail(.type, "get() takes a key", loc) }
            return dict[try resolved(key, loc)] ?? (args.count > 1 ? args[1] : .none)
        case "pop":
            guard let key0 = args.first else { throw fail(.type, "pop() takes a key", loc) }
            let key = try resolved(key0, loc)
            guard let v = dict[key] else {
                if args.count > 1 { return args[1] }
                throw fail(.key, try repr(key, loc), loc)
            }
            return try mutate(v) { dict[key] = nil }
        case "setdefault":
            guard let key0 = args.first else { throw fail(.type, "setdefault() takes a key", loc) }
            let key = try resolved(key0, loc)
            if let v = dict[key] { return v }
            let v = args.count > 1 ? try appendable(args[1], loc) : PyValue.none
            return try mutate(v) { if dict[key] == nil { dict[key] = v } }
        case "update":
            guard case let .dict(other)? = args.first else { throw fail(.type, "update() takes a dict", loc) }
            let entries = other.entries
            return try mutate { for (k, v) in entries { dict[k] = v } }
        case "clear": return try mutate { dict.entries.removeAll() }
        case "copy": return .dict(PyDict(dict.entries))
        case "save": return try saveValue(base, loc)
        default: throw fail(.attribute, "'dict' object has no attribute '\(name)'", loc)
        }
    }

    func stringMethod(_ s: String, _ name: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        func text(_ i: Int) throws -> String? {
            guard i < args.count else { return nil }
            guard case let .str(t) = try resolved(args[i], loc) else {
                if case .none = args[i] { return nil }
                throw fail(.type, "\(name)() argument must be str, not \(args[i].typeName)", loc)
            }
            return t
        }
        func trimmed(_ chars: String?, leading: Bool, trailing: Bool) -> String {
            let set = chars.map { Set($0) }
            func drop(_ c: Character) -> Bool { set.map { $0.contains(c) } ?? c.isWhitespace }
            var scalars = Substring(s)
            if leading { while let c = scalars.first, drop(c) { scalars.removeFirst() } }
            if trailing { while let c = scalars.last, drop(c) { scalars.removeLast() } }
            return String(scalars)
        }
        switch name {
        case "join":
            return .str(try iterate(args.first ?? .list(PyList()), loc).map { v -> String in
                guard case let .str(t) = try resolved(v, loc) else { throw fail(.type, "sequence item: expected str instance, \(v.typeName) found", loc) }
                return t
            }.joined(separator: s))
        case "strip": return .str(trimmed(try text(0), leading: true, trailing: true))
        case "lstrip": return .str(trimmed(try text(0), leading: true, trailing: false))
        case "rstrip": return .str(trimmed(try text(0), leading: false, trailing: true))
        case "upper": return .str(s.uppercased())
        case "lower": return .str(s.lowercased())
        case "title": return .str(s.capitalized)
        case "capitalize": return .str(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "isdigit": return .bool(!s.isEmpty && s.allSatisfy(\.isNumber))
        case "isalpha": return .bool(!s.isEmpty && s.allSatisfy(\.isLetter))
        case "replace":
            guard let old = try text(0), let new = try text(1) else { throw fail(.type, "replace() takes two strings", loc) }
            return .str(s.replacingOccurrences(of: old, with: new))
        case "split":
            if let sep = try text(0) {
                guard !sep.isEmpty else { throw fail(.value, "empty separator", loc) }
                return .list(PyList(s.components(separatedBy: sep).map { .str($0) }))
            }
            return .list(PyList(s.split(whereSeparator: { $0.isWhitespace }).map { .str(String($0)) }))
        case "splitlines": return .list(PyList(s.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map { .str(String($0)) }.dropLast(s.hasSuffix("\n") ? 1 : 0)))
        case "startswith", "endswith":
            guard let t = try text(0) else { throw fail(.type, "\(name)() takes a string", loc) }
            return .bool(name == "startswith" ? s.hasPrefix(t) : s.hasSuffix(t))
        case "find":
            guard let t = try text(0) else { throw fail(.type, "find() takes a string", loc) }
            guard let r = s.range(of: t) else { return .int(-1) }
            return .int(s.distance(from: s.startIndex, to: r.lowerBound))
        case "count":
            guard let t = try text(0), !t.isEmpty else { return .int(s.count + 1) }
            return .int(s.components(separatedBy: t).count - 1)
        case "zfill":
            guard case let .int(w)? = args.first, w <= Self.maxSequence else { throw fail(.type, "zfill() takes a reasonable int", loc) }
            return .str(String(repeating: "0", count: max(0, w - s.count)) + s)
        case "ljust", "rjust", "center":
            guard case let .int(w)? = args.first else { throw fail(.type, "\(name)() takes an int", loc) }
            let fill = try text(1) ?? " "
            guard fill.count == 1, let f = fill.first else { throw fail(.type, "The fill character must be exactly one character long", loc) }
            guard w <= Self.maxSequence else { throw fail(.value, "width too large", loc) }
            let pad = max(0, w - s.count)
            switch name {
            case "ljust": return .str(s + String(repeating: f, count: pad))
            case "rjust": return .str(String(repeating: f, count: pad) + s)
            default:
                let left = pad / 2 + (pad % 2 == 1 && w % 2 == 1 ? 1 : 0)
                return .str(String(repeating: f, count: left) + s + String(repeating: f, count: pad - left))
            }
        case "format":
            return .str(try strFormat(s, args, kwargs, loc))
        case "save": return .str(s)
        default: throw fail(.attribute, "'str' object has no attribute '\(name)'", loc)
        }
    }

    /// `"{} and {name:.2f}".format(...)`.
    func strFormat(_ format: String, _ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> String {
        var out = ""
        var next = 0
        var chars = Array(format)[...]
        while let c = chars.popFirst() {
            if c == "{" {
                if chars.first == "{" { chars.removeFirst(); out.append("{"); continue }
                var field = ""
                while let d = chars.first, d != "}" { field.append(d); chars.removeFirst() }
                guard chars.popFirst() == "}" else { throw fail(.value, "Single '{' encountered in format string", loc) }
                var name = field, spec = ""
                if let colon = field.firstIndex(of: ":") { name = String(field[..<colon]); spec = String(field[field.index(after: colon)...]) }
                var conversion: Character?
                if let bang = name.firstIndex(of: "!") { conversion = name[name.index(after: bang)...].first; name = String(name[..<bang]) }
                let value: PyValue
                if name.isEmpty {
                    guard next < args.count else { throw fail(.index, "Replacement index \(next) out of range for positional args tuple", loc) }
                    value = args[next]
                    next += 1
                } else if let i = Int(name) {
                    guard i < args.count else { throw fail(.index, "Replacement index \(i) out of range for positional args tuple", loc) }
                    value = args[i]
                } else {
                    guard let v = kwargs[name] else { throw fail(.key, Repr.string(name), loc) }
                    value = v
                }
                let shown: PyValue = conversion == "r" ? .str(try repr(value, loc)) : conversion == "s" ? .str(try str(value, loc)) : value
                out += try Format.apply(spec, to: shown, self, loc)
            } else if c == "}" {
                if chars.first == "}" { chars.removeFirst() }
                out.append("}")
            } else {
                out.append(c)
            }
        }
        return out
    }

    /// Inside a trace, appending a traced value saves it (nnsight's saved list); a client value
    /// is observed so that it can be computed.
    func appendable(_ v: PyValue, _ loc: SourceLocation) throws -> PyValue {
        guard tracing > 0, !resolving else { return v }
        switch v {
        case let .proxy(p) where p.isTupleValue:
            // A tuple of values (topk's values and indices): its items come back, as a tuple.
            let items = tupleItems(p)
            guard !items.isEmpty else { throw fail(.type, "a tuple output cannot be saved as a whole; append its items (e.g. output[0])", loc) }
            return .tuple(items.map { item in item.map { .saved($0.save(), $0) } ?? .none })
        case let .proxy(p):
            return .saved(p.save(), p)
        case .deferred, .list, .tuple, .dict:
            observe(needs(of: v))
            return v
        default: return v
        }
    }

    /// Token ids for the tokenizer: a negative one is Hugging Face's OverflowError; ids past the
    /// vocabulary are skipped as its tokenizer skips them, with a warning on stderr naming them
    /// (the printed text alone would not show they were there).
    func decodable(_ v: PyValue, _ method: String, _ loc: SourceLocation) throws -> [Int] {
        let all = try ids(v, loc)
        if let negative = all.first(where: { $0 < 0 }) {
            throw fail(.overflow, "out of range integral type conversion attempted (token id \(negative) in tokenizer.\(method))", loc)
        }
        let unknown = all.filter { $0 >= model.tokenizer.vocabularySize }
        if !unknown.isEmpty {
            let listed = unknown.prefix(8).map(String.init).joined(separator: ", ") + (unknown.count > 8 ? ", ..." : "")
            warn("UserWarning", "tokenizer.\(method): token id\(unknown.count == 1 ? "" : "s") \(listed) not in the vocabulary (\(model.tokenizer.vocabularySize) ids), skipped as Hugging Face's tokenizer skips them", loc)
        }
        return all
    }

    func ids(_ v: PyValue, _ loc: SourceLocation) throws -> [Int] {
        switch try resolved(v, loc) {
        case let .int(i): return [i]
        case let .tensor(t, _): return t.ints
        case let .list(l): return try l.items.flatMap { try ids($0, loc) }
        case let .tuple(t): return try t.flatMap { try ids($0, loc) }
        default: throw fail(.type, "token ids must be ints, a list of ints or a tensor", loc)
        }
    }
}
