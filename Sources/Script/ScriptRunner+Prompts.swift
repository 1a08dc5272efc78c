import Coordinator
import Engine
import Graph

/// What a script may pass as prompts (to `generate`, `trace`, `invoke`), and the tokenizer's
/// own call: text, token ids, batches of either, and the tokenizer's output.
extension ScriptRunner {
    /// The batch a prompt argument stands for, as token ids per row (unpadded): a string, a
    /// list of strings, a list of ids, a list of id lists, an int tensor `[T]` or `[B, T]`, or
    /// the tokenizer's output (`input_ids` with its `attention_mask`: padding is dropped, the
    /// batch is padded again as nnsight pads it).
    func promptRows(_ v0: PyValue, _ loc: SourceLocation) throws -> [[Int]] {
        let v = try resolved(v0, loc)
        func bad() -> ScriptError {
            fail(.type, "a prompt is a string, a list of strings, token ids (a list, a list of lists or an int tensor), or the tokenizer's output", loc)
        }
        switch v {
        case let .str(s): return [model.tokenizer.encode(s)]
        case let .tensor(t, _):
            guard t.dtype == .int64, t.rank == 1 || t.rank == 2 else { throw bad() }
            let ids = t.int64s.map { Int($0) }
            guard t.rank == 2 else { return [ids] }
            let width = t.shape[1]
            return (0..<t.shape[0]).map { Array(ids[($0 * width)..<(($0 + 1) * width)]) }
        case let .list(l):
            guard let first = l.items.first else { throw fail(.value, "the list of prompts is empty", loc) }
            if case .int = try resolved(first, loc) {
                return [try l.items.map { item -> Int in
                    guard case let .int(i) = try resolved(item, loc) else { throw bad() }
                    return i
                }]
            }
            return try l.items.flatMap { item -> [[Int]] in
                let rows = try promptRows(item, loc)
                guard rows.count == 1 else { throw bad() }
                return rows
            }
        case let .dict(d):
            guard let ids = d[.str("input_ids")] else { throw fail(.key, "the prompt dict has no 'input_ids'", loc) }
            var rows = try promptRows(ids, loc)
            if let mask = d[.str("attention_mask")] {
                let masks = try promptRows(mask, loc)
                guard masks.count == rows.count, zip(masks, rows).allSatisfy({ $0.count == $1.count }) else {
                    throw fail(.value, "attention_mask does not match input_ids", loc)
                }
                rows = zip(rows, masks).map { row, mask in zip(row, mask).filter { $0.1 != 0 }.map(\.0) }
            }
            return rows
        default:
            throw bad()
        }
    }

    /// `model.tokenizer(text_or_texts, padding=..., return_tensors=...)`: `input_ids` and
    /// `attention_mask`, left-padded with the pad token as nnsight sets the tokenizer up.
    func tokenizerCall(_ args: [PyValue], _ kwargs: [String: PyValue], _ loc: SourceLocation) throws -> PyValue {
        if let bad = kwargs.keys.sorted().first(where: { !["return_tensors", "padding", "add_special_tokens", "truncation"].contains($0) }) {
            throw fail(.type, "tokenizer() got an unexpected keyword argument '\(bad)'", loc)
        }
        guard let first = args.first else { throw fail(.type, "model.tokenizer(...) takes a string or a list of strings", loc) }
        let texts: [String]
        var single = false
        switch try resolved(first, loc) {
        case let .str(s): texts = [s]; single = true
        case let .list(l):
            texts = try l.items.map { item in
                guard case let .str(s) = try resolved(item, loc) else { throw fail(.type, "model.tokenizer(...) takes a string or a list of strings", loc) }
                return s
            }
        default: throw fail(.type, "model.tokenizer(...) takes a string or a list of strings", loc)
        }
        let rows = texts.map { model.tokenizer.encode($0) }
        let padding: Bool = switch kwargs["padding"] {
        case .bool(true)?, .str("longest")?, .str("max_length")?: true
        default: false
        }
        let tensors: Bool = switch kwargs["return_tensors"] {
        case .str("pt")?: true
        case nil, .none?: false
        default: throw fail(.value, "return_tensors: only \"pt\" (torch) is supported", loc)
        }
        let longest = rows.map(\.count).max() ?? 0
        let pad = model.tokenizer.endOfTextId
        let ids = rows.map { padding ? [Int](repeating: pad, count: longest - $0.count) + $0 : $0 }
        let masks = rows.map { padding ? [Int](repeating: 0, count: longest - $0.count) + [Int](repeating: 1, count: $0.count) : [Int](repeating: 1, count: $0.count) }
        func value(_ table: [[Int]]) throws -> PyValue {
            if tensors {
                guard table.allSatisfy({ $0.count == table[0].count }) else {
                    throw fail(.value, "Unable to create tensor, you should probably activate padding with 'padding=True' to have batched tensors with the same length.", loc)
                }
                return .tensor(Tensor(shape: [table.count, table.first?.count ?? 0], ints: table.joined().map(Int64.init)), grad: nil)
            }
            let lists = table.map { PyValue.list(PyList($0.map { .int($0) })) }
            return single ? lists[0] : .list(PyList(lists))
        }
        return .dict(PyDict([(.str("input_ids"), try value(ids)), (.str("attention_mask"), try value(masks))]))
    }
}
