/// A recursive-descent parser for the Python subset of trace scripts. Everything outside the
/// subset is an error naming the construct, with its line and column.
struct Parser {
    var tokens: [Token]
    var p = 0
    let file: String
    /// Nesting of expressions and blocks (bounded, so that no input exhausts the stack).
    var depth = 0
    static let maxDepth = 100
    /// Height of the operator chains being parsed (`1 + 1 + ...` is a left-deep tree as tall as
    /// it is long, evaluated recursively): past it, Python's own RecursionError.
    var chainHeight = 0
    static let maxChainHeight = 3000

    init(_ source: String, file: String = "<script>") throws(ScriptError) {
        var lexer = Lexer(source, file: file)
        tokens = try lexer.tokenize()
        self.file = file
    }

    static let unsupportedKeywords: [String: String] = [
        "class": "class definitions", "try": "try statements", "raise": "raise statements",
        "del": "del statements", "global": "global statements", "nonlocal": "nonlocal statements", "async": "async",
        "await": "await", "yield": "yield", "match": "match statements", "except": "except clauses", "finally": "finally clauses",
    ]

    var current: Token { tokens[p] }
    var location: SourceLocation { current.location }

    func fail(_ message: String, at loc: SourceLocation? = nil) -> ScriptError { fail(.syntax, message, at: loc) }

    func fail(_ kind: ScriptError.Kind, _ message: String, at loc: SourceLocation? = nil) -> ScriptError {
        let l = loc ?? location
        return ScriptError(kind, message, file: file, line: l.line, column: l.column)
    }

    func isOp(_ op: String) -> Bool { current.kind == .op(op) }
    func isName(_ name: String) -> Bool { current.kind == .name(name) }

    mutating func expectOp(_ op: String) throws(ScriptError) {
        guard isOp(op) else { throw fail("expected '\(op)'\(describeCurrent)") }
        p += 1
    }

    var describeCurrent: String {
        switch current.kind {
        case let .name(n): ", found '\(n)'"
        case let .op(o): ", found '\(o)'"
        case .newline: ", found end of line"
        case .end: ", found end of file"
        case .indent: ", found an indented block"
        default: ""
        }
    }

    mutating func parseModule() throws(ScriptError) -> [Stmt] {
        var body: [Stmt] = []
        while current.kind != .end {
            if current.kind == .newline { p += 1; continue }
            if current.kind == .indent { throw fail("unexpected indent") }
            body += try statement()
        }
        return body
    }

    mutating func block() throws(ScriptError) -> [Stmt] {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("too many nested blocks (over \(Self.maxDepth))") }
        try expectOp(":")
        if current.kind != .newline {
            return try simpleStatements()
        }
        p += 1
        guard current.kind == .indent else { throw fail("expected an indented block") }
        p += 1
        var body: [Stmt] = []
        while current.kind != .dedent && current.kind != .end {
            if current.kind == .newline { p += 1; continue }
            body += try statement()
        }
        if current.kind == .dedent { p += 1 }
        return body
    }

    mutating func statement() throws(ScriptError) -> [Stmt] {
        let loc = location
        if case let .name(word) = current.kind {
            if let construct = Self.unsupportedKeywords[word] {
                throw fail(.unsupported, "\(construct) are not supported in trace scripts")
            }
            switch word {
            case "if":
                p += 1
                var branches: [(Expr, [Stmt])] = [(try expression(), try block())]
                var orelse: [Stmt]?
                while isName("elif") {
                    p += 1
                    branches.append((try expression(), try block()))
                }
                if isName("else") {
                    p += 1
                    orelse = try block()
                }
                return [Stmt(.ifStmt(branches, orelse), loc)]
            case "for":
                p += 1
                let target = try targetList()
                guard isName("in") else { throw fail("expected 'in'\(describeCurrent)") }
                p += 1
                let iter = try expressionList()
                let body = try block()
                if isName("else") { throw fail(.unsupported, "for-else is not supported in trace scripts") }
                return [Stmt(.forLoop(target, iter, body), loc)]
            case "while":
                p += 1
                let test = try expression()
                let body = try block()
                if isName("else") { throw fail(.unsupported, "while-else is not supported in trace scripts") }
                return [Stmt(.whileLoop(test, body), loc)]
            case "def":
                p += 1
                guard case let .name(name) = current.kind else { throw fail("expected a function name\(describeCurrent)") }
                p += 1
                try expectOp("(")
                let params = try parameters(closing: ")")
                try expectOp(")")
                if isOp("->") { p += 1; _ = try expression() }
                return [Stmt(.def(name, params, try block()), loc)]
            case "with":
                p += 1
                var items: [(Expr, Expr?)] = []
                repeat {
                    if isOp(",") { p += 1 }
                    let context = try expression()
                    var name: Expr?
                    if isName("as") {
                        p += 1
                        name = try primary()
                    }
                    items.append((context, name))
                } while isOp(",")
                return [Stmt(.with(items, try block()), loc)]
            default: break
            }
        }
        return try simpleStatements()
    }

    mutating func simpleStatements() throws(ScriptError) -> [Stmt] {
        var statements = [try simpleStatement()]
        while isOp(";") {
            p += 1
            if current.kind == .newline { break }
            statements.append(try simpleStatement())
        }
        guard current.kind == .newline || current.kind == .end else { throw fail("invalid syntax\(describeCurrent)") }
        if current.kind == .newline { p += 1 }
        return statements
    }

    mutating func simpleStatement() throws(ScriptError) -> Stmt {
        let loc = location
        if isName("pass") { p += 1; return Stmt(.pass, loc) }
        if isName("import") {
            p += 1
            var modules: [(path: String, alias: String?)] = []
            repeat {
                if isOp(",") { p += 1 }
                let path = try dottedName()
                var alias: String?
                if isName("as") { p += 1; alias = try name() }
                modules.append((path, alias))
            } while isOp(",")
            return Stmt(.importModules(modules), loc)
        }
        if isName("from") {
            p += 1
            let module = try dottedName()
            guard isName("import") else { throw fail("expected 'import'\(describeCurrent)") }
            p += 1
            let parenthesized = isOp("(")
            if parenthesized { p += 1 }
            var names: [(name: String, alias: String?)] = []
            repeat {
                if isOp(",") { p += 1; if parenthesized && isOp(")") { break } }
                if isOp("*") { throw fail(.unsupported, "'from \(module) import *' is not supported in trace scripts") }
                let n = try name()
                var alias: String?
                if isName("as") { p += 1; alias = try name() }
                names.append((n, alias))
            } while isOp(",")
            if parenthesized { try expectOp(")") }
            return Stmt(.importFrom(module, names), loc)
        }
        if isName("return") {
            p += 1
            if current.kind == .newline || current.kind == .end || isOp(";") { return Stmt(.return(nil), loc) }
            return Stmt(.return(try expressionList()), loc)
        }
        if isName("break") { p += 1; return Stmt(.break, loc) }
        if isName("continue") { p += 1; return Stmt(.continue, loc) }
        if isName("assert") {
            p += 1
            let test = try expression()
            var message: Expr?
            if isOp(",") { p += 1; message = try expression() }
            return Stmt(.assert(test, message), loc)
        }
        if case let .name(word) = current.kind, let construct = Self.unsupportedKeywords[word] {
            throw fail(.unsupported, "\(construct) are not supported in trace scripts")
        }
        let first = try expressionList()
        for op in ["+=", "-=", "*=", "/=", "//=", "%=", "**="] where isOp(op) {
            p += 1
            return Stmt(.augAssign(first, String(op.dropLast()), try expressionList()), loc)
        }
        if isOp("=") {
            var targets = [first]
            var value = first
            while isOp("=") {
                p += 1
                value = try expressionList()
                targets.append(value)
            }
            targets.removeLast()
            for t in targets { try checkTarget(t) }
            return Stmt(.assign(targets, value), loc)
        }
        return Stmt(.expr(first), loc)
    }

    mutating func name() throws(ScriptError) -> String {
        guard case let .name(n) = current.kind else { throw fail("expected a name\(describeCurrent)") }
        p += 1
        return n
    }

    mutating func dottedName() throws(ScriptError) -> String {
        var full = try name()
        while isOp(".") {
            p += 1
            full += "." + (try name())
        }
        return full
    }

    /// `a, b=1` up to `closing` (`)` for def, `:` for lambda).
    mutating func parameters(closing: String) throws(ScriptError) -> [Expr.Param] {
        var params: [Expr.Param] = []
        while !isOp(closing) {
            if isOp("*") || isOp("**") { throw fail(.unsupported, "*args and **kwargs parameters are not supported in trace scripts") }
            let n = try name()
            if isOp(":") && closing != ":" { p += 1; _ = try expression() }  // an annotation
            var defaultValue: Expr?
            if isOp("=") { p += 1; defaultValue = try expression() }
            else if params.contains(where: { $0.defaultValue != nil }) { throw fail("non-default argument follows default argument") }
            guard !params.contains(where: { $0.name == n }) else { throw fail("duplicate argument '\(n)' in function definition") }
            params.append(Expr.Param(name: n, defaultValue: defaultValue))
            if isOp(",") { p += 1 } else { break }
        }
        return params
    }

    func checkTarget(_ e: Expr) throws(ScriptError) {
        switch e.kind {
        case .name, .subscript, .attribute: return
        case let .tuple(items), let .list(items): for i in items { try checkTarget(i) }
        default: throw fail("cannot assign to this expression", at: e.location)
        }
    }

    mutating func targetList() throws(ScriptError) -> Expr {
        let loc = location
        var items = [try primary()]
        while isOp(",") {
            p += 1
            if isName("in") { break }
            items.append(try primary())
        }
        let target = items.count == 1 ? items[0] : Expr(.tuple(items), loc)
        try checkTarget(target)
        return target
    }

    /// `a, b` as a tuple (a single expression otherwise).
    mutating func expressionList() throws(ScriptError) -> Expr {
        let loc = location
        let first = try expression()
        guard isOp(",") else { return first }
        var items = [first]
        while isOp(",") {
            p += 1
            if current.kind == .newline || isOp("=") || isOp(")") || isOp(":") { break }
            items.append(try expression())
        }
        return Expr(.tuple(items), loc)
    }

    mutating func expression() throws(ScriptError) -> Expr {
        let loc = location
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maxDepth else { throw fail("too many nested expressions (over \(Self.maxDepth))") }
        if isName("lambda") {
            p += 1
            let params = try parameters(closing: ":")
            try expectOp(":")
            return Expr(.lambda(params, try expression()), loc)
        }
        let e = try orTest()
        // `x if c else y` (a comprehension's filter follows its iterable, parsed as orTest).
        if isName("if") {
            p += 1
            let test = try orTest()
            guard isName("else") else { throw fail("expected 'else' in a conditional expression\(describeCurrent)") }
            p += 1
            return Expr(.ifExp(test: test, body: e, orelse: try expression()), loc)
        }
        return e
    }

    mutating func orTest() throws(ScriptError) -> Expr {
        let loc = location
        var items = [try andTest()]
        while isName("or") { p += 1; items.append(try andTest()) }
        return items.count == 1 ? items[0] : Expr(.boolOp("or", items), loc)
    }

    mutating func andTest() throws(ScriptError) -> Expr {
        let loc = location
        var items = [try notTest()]
        while isName("and") { p += 1; items.append(try notTest()) }
        return items.count == 1 ? items[0] : Expr(.boolOp("and", items), loc)
    }

    mutating func notTest() throws(ScriptError) -> Expr {
        let loc = location
        if isName("not") {
            p += 1
            depth += 1
            defer { depth -= 1 }
            guard depth <= Self.maxDepth else { throw fail("too many nested expressions (over \(Self.maxDepth))") }
            return Expr(.unary("not", try notTest()), loc)
        }
        return try comparison()
    }

    mutating func comparison() throws(ScriptError) -> Expr {
        let loc = location
        let first = try bitOr()
        var rest: [(String, Expr)] = []
        while true {
            var op: String?
            for o in ["==", "!=", "<=", ">=", "<", ">"] where isOp(o) { op = o }
            if op != nil { p += 1 }
            else if isName("in") { op = "in"; p += 1 }
            else if isName("not"), case .name("in") = tokens[p + 1].kind { op = "not in"; p += 2 }
            else if isName("is") {
                p += 1
                if isName("not") { p += 1; op = "is not" } else { op = "is" }
            }
            guard let op else { break }
            rest.append((op, try bitOr()))
        }
        return rest.isEmpty ? first : Expr(.compare(first, rest), loc)
    }

    mutating func bitOr() throws(ScriptError) -> Expr { try binaryLevel(["|"]) { (p) throws(ScriptError) in try p.bitXor() } }
    mutating func bitXor() throws(ScriptError) -> Expr { try binaryLevel(["^"]) { (p) throws(ScriptError) in try p.bitAnd() } }
    mutating func bitAnd() throws(ScriptError) -> Expr { try binaryLevel(["&"]) { (p) throws(ScriptError) in try p.arith() } }

    mutating func binaryLevel(_ ops: [String], _ next: (inout Parser) throws(ScriptError) -> Expr) throws(ScriptError) -> Expr {
        var left = try next(&self)
        let base = chainHeight
        defer { chainHeight = base }
        while case let .op(op) = current.kind, ops.contains(op) {
            try growChain()
            p += 1
            left = Expr(.binary(op, left, try next(&self)), left.location)
        }
        return left
    }

    /// One more link of an operator chain (counted while the rest of the chain is parsed).
    mutating func growChain() throws(ScriptError) {
        chainHeight += 1
        guard chainHeight + depth <= Self.maxChainHeight else {
            throw fail(.recursion, "maximum recursion depth exceeded during compilation (an expression over \(Self.maxChainHeight) operators deep)")
        }
    }

    mutating func arith() throws(ScriptError) -> Expr {
        try binaryLevel(["+", "-"]) { (p) throws(ScriptError) in try p.term() }
    }

    mutating func term() throws(ScriptError) -> Expr {
        try binaryLevel(["*", "/", "//", "%", "@"]) { (p) throws(ScriptError) in try p.factor() }
    }

    mutating func factor() throws(ScriptError) -> Expr {
        let loc = location
        depth += 1
        defer { depth -= 1 }
        guard depth <= 4 * Self.maxDepth else { throw fail("too many nested expressions (over \(Self.maxDepth))") }
        if isOp("-") || isOp("+") {
            guard case let .op(op) = current.kind else { return try power() }
            p += 1
            return Expr(.unary(op, try factor()), loc)
        }
        if isOp("~") {
            p += 1
            return Expr(.unary("~", try factor()), loc)
        }
        return try power()
    }

    mutating func power() throws(ScriptError) -> Expr {
        let loc = location
        let base = try primary()
        if isOp("**") {
            p += 1
            return Expr(.binary("**", base, try factor()), loc)
        }
        return base
    }

    mutating func primary() throws(ScriptError) -> Expr {
        var e = try atom()
        // As in Python's AST, a trailer's node starts where its whole expression starts.
        let loc = e.location
        while true {
            if isOp(".") {
                p += 1
                guard case let .name(n) = current.kind else { throw fail("expected an attribute name") }
                p += 1
                e = Expr(.attribute(e, n), loc)
            } else if isOp("(") {
                p += 1
                var args: [Expr] = [], kwargs: [(String, Expr)] = []
                while !isOp(")") {
                    if isOp("*") || isOp("**") { throw fail(.unsupported, "argument unpacking (*args, **kwargs) is not supported in trace scripts") }
                    if case let .name(n) = current.kind, tokens[p + 1].kind == .op("=") {
                        p += 2
                        kwargs.append((n, try expression()))
                    } else {
                        guard kwargs.isEmpty else { throw fail("positional argument follows keyword argument") }
                        let arg = try expression()
                        if isName("for") { args.append(try comprehension(arg, loc: arg.location, closing: ")")); break }
                        args.append(arg)
                    }
                    if isOp(",") { p += 1 } else { break }
                }
                try expectOp(")")
                e = Expr(.call(e, args, kwargs), loc)
            } else if isOp("[") {
                p += 1
                var items: [Expr.SubscriptItem] = []
                repeat {
                    if isOp(",") { p += 1; if isOp("]") { break } }
                    items.append(try subscriptItem())
                } while isOp(",")
                try expectOp("]")
                e = Expr(.subscript(e, items), loc)
            } else {
                return e
            }
        }
    }

    mutating func subscriptItem() throws(ScriptError) -> Expr.SubscriptItem {
        func boundary(_ parser: Parser) -> Bool { parser.isOp(":") || parser.isOp(",") || parser.isOp("]") }
        let start: Expr? = isOp(":") ? nil : try expression()
        guard isOp(":") else { return .index(start!) }
        p += 1
        let stop: Expr? = boundary(self) ? nil : try expression()
        var step: Expr?
        if isOp(":") {
            p += 1
            step = boundary(self) ? nil : try expression()
        }
        return .slice(start, stop, step)
    }

    mutating func comprehension(_ element: Expr, loc: SourceLocation, closing: String) throws(ScriptError) -> Expr {
        p += 1  // for
        let target = try targetList()
        guard isName("in") else { throw fail("expected 'in'\(describeCurrent)") }
        p += 1
        let iter = try orTest()
        var conditions: [Expr] = []
        while isName("if") { p += 1; conditions.append(try orTest()) }
        if isName("for") { throw fail(.unsupported, "nested comprehensions are not supported in trace scripts") }
        return Expr(.listComp(element, target: target, iter: iter, conditions: conditions), loc)
    }

    mutating func atom() throws(ScriptError) -> Expr {
        let loc = location
        switch current.kind {
        case let .name(n):
            if let construct = Self.unsupportedKeywords[n] { throw fail(.unsupported, "\(construct) are not supported in trace scripts") }
            p += 1
            switch n {
            case "True": return Expr(.bool(true), loc)
            case "False": return Expr(.bool(false), loc)
            case "None": return Expr(.none, loc)
            default: return Expr(.name(n), loc)
            }
        case let .int(v): p += 1; return Expr(.int(v), loc)
        case let .float(v): p += 1; return Expr(.float(v), loc)
        case .string:
            var parts: [Expr.FPart] = []
            var plain = true
            while case let .string(text, isF) = current.kind {
                let at = location
                p += 1
                if isF { plain = false; parts += try fstringParts(text, at: at) } else { parts.append(.literal(text)) }
            }
            if plain { return Expr(.string(parts.map { if case let .literal(s) = $0 { s } else { "" } }.joined()), loc) }
            return Expr(.fstring(parts), loc)
        case .op("("):
            p += 1
            if isOp(")") { p += 1; return Expr(.tuple([]), loc) }
            let first = try expression()
            if isName("for") {
                let comp = try comprehension(first, loc: loc, closing: ")")
                try expectOp(")")
                return comp
            }
            if isOp(")") { p += 1; return first }
            var items = [first]
            while isOp(",") {
                p += 1
                if isOp(")") { break }
                items.append(try expression())
            }
            try expectOp(")")
            return Expr(.tuple(items), loc)
        case .op("["):
            p += 1
            var items: [Expr] = []
            while !isOp("]") {
                let item = try expression()
                if isName("for") {
                    let comp = try comprehension(item, loc: loc, closing: "]")
                    try expectOp("]")
                    return comp
                }
                items.append(item)
                if isOp(",") { p += 1 } else { break }
            }
            try expectOp("]")
            return Expr(.list(items), loc)
        case .op("{"):
            p += 1
            var pairs: [(Expr, Expr)] = []
            while !isOp("}") {
                let key = try expression()
                guard isOp(":") else { throw fail(.unsupported, "set literals are not supported in trace scripts") }
                p += 1
                let value = try expression()
                if pairs.isEmpty, isName("for") {
                    guard case let .listComp(_, target, iter, conditions) = try comprehension(value, loc: loc, closing: "}").kind else { break }
                    try expectOp("}")
                    return Expr(.dictComp(key: key, value: value, target: target, iter: iter, conditions: conditions), loc)
                }
                pairs.append((key, value))
                if isOp(",") { p += 1 } else { break }
            }
            try expectOp("}")
            return Expr(.dict(pairs), loc)
        case .op("..."):
            p += 1
            return Expr(.ellipsis, loc)
        default:
            throw fail("invalid syntax\(describeCurrent)")
        }
    }

    /// Splits an f-string's text into literals and `{expression!conversion:spec}` fields.
    func fstringParts(_ text: String, at loc: SourceLocation) throws(ScriptError) -> [Expr.FPart] {
        var parts: [Expr.FPart] = []
        var literal = ""
        let chars = Array(text)
        var i = 0
        while i < chars.count {
            let c = chars[i]
            if c == "{" {
                if i + 1 < chars.count && chars[i + 1] == "{" { literal.append("{"); i += 2; continue }
                if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
                var depth = 1, j = i + 1, inner = ""
                var quote: Character?
                while j < chars.count {
                    let ch = chars[j]
                    if let q = quote { if ch == q { quote = nil } }
                    else if ch == "'" || ch == "\"" { quote = ch }
                    else if "([{".contains(ch) { depth += 1 }
                    else if ")]}".contains(ch) { depth -= 1; if depth == 0 { break } }
                    inner.append(ch)
                    j += 1
                }
                guard j < chars.count else { throw fail("f-string: expecting '}'", at: loc) }
                // Split off !conversion and :spec at the top level of the field.
                var expressionText = inner, spec = "", conversion: Character?
                var level = 0, q: Character?
                for (k, ch) in inner.enumerated() {
                    if let qq = q { if ch == qq { q = nil }; continue }
                    if ch == "'" || ch == "\"" { q = ch; continue }
                    if "([{".contains(ch) { level += 1 } else if ")]}".contains(ch) { level -= 1 }
                    if level == 0 && ch == "!" && k + 1 < inner.count && Array(inner)[k + 1] != "=" {
                        let rest = Array(inner)[(k + 1)...]
                        conversion = rest.first
                        expressionText = String(inner.prefix(k))
                        if let colon = rest.firstIndex(of: ":") { spec = String(rest[(colon + 1)...]) }
                        break
                    }
                    if level == 0 && ch == ":" {
                        expressionText = String(inner.prefix(k))
                        spec = String(inner.dropFirst(k + 1))
                        break
                    }
                }
                var sub = try Parser(expressionText, file: file)
                let value = try sub.expression()
                parts.append(.value(value, conversion: conversion, spec: spec))
                i = j + 1
            } else if c == "}" {
                if i + 1 < chars.count && chars[i + 1] == "}" { literal.append("}"); i += 2; continue }
                throw fail("f-string: single '}' is not allowed", at: loc)
            } else {
                literal.append(c)
                i += 1
            }
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        return parts
    }
}
