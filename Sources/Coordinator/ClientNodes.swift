import Engine
import Graph

/// Nodes the coordinator evaluates once generation is done: those on `model.generator.output`
/// and `model.transformer.inputs`, and the ops, saves and appends that depend only on them or on
/// constants. The op registry's kernels, as on a worker.
enum ClientNodes {
    /// The values of the saves and appends among `nodes`, by their ids.
    static func evaluate(_ nodes: [GraphNode], outcome: RunOutcome, invokeRows: (Int) -> Range<Int>, budget: OpBudget = .unlimited) throws(TraceError) -> [(UInt32, Tensor)] {
        var values: [UInt32: Value] = [:]
        var results: [(UInt32, Tensor)] = []
        for node in nodes {
            func rows(_ matrix: [[Int]]) -> Tensor {
                let range = node.invoke >= 0 ? invokeRows(node.invoke) : 0..<matrix.count
                let selected = range.upperBound <= matrix.count ? Array(matrix[range]) : matrix
                return Tensor(shape: [selected.count, selected.first?.count ?? 0], ints: selected.joined().map(Int64.init))
            }
            func tensor(_ id: UInt32) throws(TraceError) -> Tensor? {
                switch values[id] {
                case let .tensor(t)?: return t
                case .tuple?: throw TraceError(.runtime, "node \(id) is a tuple; index it first").at(node)
                case nil: return nil
                }
            }
            if let condition = node.condition {
                guard let c = try tensor(condition), c.count == 1, c.bools[0] else { continue }
            }
            switch node.kind {
            case let .read(read):
                if read.module == .generator {
                    // A stopped generation never finished: its output does not exist.
                    if !outcome.stopped { values[node.id] = .tensor(rows(outcome.sequences)) }
                } else if read.module == .streamer, node.step < outcome.inputs.count {
                    // What the streamer is handed: the padded prompt, then each new token.
                    let ids = rows(outcome.inputs[node.step].tokens)
                    values[node.id] = .tensor(node.step == 0 ? ids : Tensor(shape: [ids.shape[0]], ints: ids.int64s))
                } else if node.step < outcome.inputs.count {
                    let inputs = outcome.inputs[node.step]
                    switch read.key {
                    case "input_ids": values[node.id] = .tensor(rows(inputs.tokens))
                    case "attention_mask":
                        // The mask covers every position so far, as transformers passes it.
                        var full = [[Int]](repeating: [], count: outcome.sequences.count)
                        for s in 0...node.step { for b in full.indices { full[b] += outcome.inputs[s].mask[b] } }
                        values[node.id] = .tensor(rows(full))
                    default: values[node.id] = .tensor(rows(inputs.positions))
                    }
                }
            case let .constant(t):
                values[node.id] = .tensor(t)
            case let .op(name, inputs, attributes):
                let args = inputs.compactMap { values[$0] }
                guard args.count == inputs.count, let spec = OpRegistry.spec(name) else { continue }
                do throws(OpError) { values[node.id] = try spec.run(args, attributes, budget: budget) } catch { throw error.trace(.runtime, at: node) }
            case let .save(input, id), let .append(input, id):
                if let v = try tensor(input) { results.append((id, v)) }
            case .set, .replace, .call, .parameter, .skip, .external:
                continue  // the compiler places these on workers
            }
        }
        return results
    }
}
