import Engine
import Wire
import Worker

/// Nodes the coordinator evaluates once generation is done: those on `model.generator.output`
/// and `model.transformer.inputs`, and the ops, saves and appends that depend only on them.
enum ClientNodes {
    /// The values of the saves and appends among `nodes`, by node id.
    static func evaluate(_ nodes: [Nnsight_V1_Node], outcome: RunOutcome, invokes: Int) throws(TraceError) -> [(UInt32, NDArray)] {
        var values: [UInt32: NDArray] = [:]
        var results: [(UInt32, NDArray)] = []
        for node in nodes {
            let step = Int(node.steps.first ?? 0)
            func rows(_ matrix: [[Int]]) -> NDArray {
                let selected = node.invoke >= 0 && Int(node.invoke) < matrix.count ? [matrix[Int(node.invoke)]] : matrix
                return NDArray(shape: [selected.count, selected.first?.count ?? 0], dtype: .int64, data: selected.joined().map(Double.init))
            }
            switch node.kind {
            case let .read(read)?:
                if read.path == "generator" {
                    values[node.id] = rows(outcome.sequences)
                } else if step < outcome.inputs.count {
                    let inputs = outcome.inputs[step]
                    switch read.path {
                    case "transformer.inputs.input_ids": values[node.id] = rows(inputs.tokens)
                    case "transformer.inputs.attention_mask":
                        // The mask covers every position so far, as transformers passes it.
                        var full = [[Int]](repeating: [], count: outcome.sequences.count)
                        for s in 0...step { for b in full.indices { full[b] += outcome.inputs[s].mask[b] } }
                        values[node.id] = rows(full)
                    default: values[node.id] = rows(inputs.positions)
                    }
                }
            case let .constant(c)?:
                do throws(WireError) { values[node.id] = NDArray(try HostTensor(c.value)) }
                catch { throw .invalidGraph("node \(node.id): \(error)") }
            case let .op(op)?:
                if op.inputs.allSatisfy({ values[$0] != nil }) {
                    do { values[node.id] = try GraphOps.evaluate(op, tensors: values) }
                    catch { throw .runtime("node \(node.id) (line \(node.line)): \(error)") }
                }
            case let .save(save)?:
                if let v = values[save.node] { results.append((node.id, v)) }
            case let .append(append)?:
                if let v = values[append.node] { results.append((node.id, v)) }
            default:
                continue
            }
        }
        return results
    }
}
