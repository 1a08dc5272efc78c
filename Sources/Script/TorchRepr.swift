import Foundation
import Graph

/// torch's `repr(tensor)` as torch 2.x writes it (`torch/_tensor_str.py`): one width for every
/// element, fixed or scientific notation chosen from the nonzero finite magnitudes, rows wrapped
/// at 80 columns, tensors over 1000 elements summarized with 3 edge items, and the
/// `grad_fn=<...>` suffix.
enum TorchRepr {
    static let lineWidth = 80, precision = 4, threshold = 1000, edgeItems = 3

    /// How every element is written: the formatter torch builds from the (summarized) values.
    struct Formatter {
        var floating: Bool
        var intMode = true
        var sciMode = false
        var maxWidth = 1

        init(_ values: [Double], dtype: DType) {
            floating = dtype == .float32
            guard floating else {
                for v in values { maxWidth = max(maxWidth, Self.plain(v, dtype).count) }
                return
            }
            let finite = values.filter { $0.isFinite && $0 != 0 }
            guard !finite.isEmpty else { return }
            let magnitudes = finite.map(Swift.abs)
            let (lo, hi) = (magnitudes.min()!, magnitudes.max()!)
            intMode = finite.allSatisfy { $0 == $0.rounded(.up) }
            if intMode {
                if hi / lo > 1000 || hi > 1e8 {
                    sciMode = true
                    for v in finite { maxWidth = max(maxWidth, Self.sci(v).count) }
                } else {
                    for v in finite { maxWidth = max(maxWidth, String(format: "%.0f", v).count + 1) }
                }
            } else if hi / lo > 1000 || hi > 1e8 || lo < 1e-4 {
                sciMode = true
                for v in finite { maxWidth = max(maxWidth, Self.sci(v).count) }
            } else {
                for v in finite { maxWidth = max(maxWidth, String(format: "%.\(TorchRepr.precision)f", v).count) }
            }
        }

        static func plain(_ v: Double, _ dtype: DType) -> String {
            dtype == .bool ? (v != 0 ? "True" : "False") : String(Int64(v))
        }

        /// Python's `{:.4e}`: at least two exponent digits.
        static func sci(_ v: Double) -> String {
            if v.isNaN { return "nan" }
            if v.isInfinite { return v < 0 ? "-inf" : "inf" }
            return String(format: "%.\(TorchRepr.precision)e", v)
        }

        func format(_ v: Double, dtype: DType) -> String {
            var text: String
            if !floating {
                text = Self.plain(v, dtype)
            } else if v.isNaN {
                text = "nan"
            } else if v.isInfinite {
                text = v < 0 ? "-inf" : "inf"
            } else if sciMode {
                text = Self.sci(v)
            } else if intMode {
                text = String(format: "%.0f", v) + "."
            } else {
                text = String(format: "%.\(TorchRepr.precision)f", v)
            }
            return String(repeating: " ", count: max(0, maxWidth - text.count)) + text
        }
    }

    static func repr(_ t: Tensor, grad: String?) -> String {
        let prefix = "tensor("
        let indent = prefix.count
        var suffixes: [String] = []
        var body: String
        if t.count == 0 && t.rank > 0 {
            body = "[]"
            if t.shape != [0] { suffixes.append("size=(" + t.shape.map(String.init).joined(separator: ", ") + (t.rank == 1 ? ",)" : ")")) }
        } else {
            let data = t.doubles
            let summarize = t.count > threshold
            let formatter = Formatter(summarize ? summarized(data, shape: t.shape) : data, dtype: t.dtype)
            body = tensorString(data, shape: t.shape, strides: Tensor.contiguousStrides(t.shape), offset: 0, indent: indent,
                                summarize: summarize, formatter: formatter, dtype: t.dtype)
        }
        if let grad { suffixes.append(grad == Autograd.leaf ? "requires_grad=True" : "grad_fn=<\(grad)>") }
        return addSuffixes(prefix + body, suffixes, indent: indent)
    }

    /// The elements torch's formatter sees when it summarizes: the edge items of every dim.
    static func summarized(_ data: [Double], shape: [Int]) -> [Double] {
        func walk(_ offset: Int, _ dim: Int) -> [Double] {
            if dim == shape.count { return [data[offset]] }
            let stride = shape[(dim + 1)...].reduce(1, *)
            let n = shape[dim]
            let rows = n > 2 * edgeItems ? Array(0..<edgeItems) + Array((n - edgeItems)..<n) : Array(0..<n)
            return rows.flatMap { walk(offset + $0 * stride, dim + 1) }
        }
        return walk(0, 0)
    }

    static func tensorString(_ data: [Double], shape: [Int], strides: [Int], offset: Int, indent: Int, summarize: Bool,
                             formatter: Formatter, dtype: DType) -> String {
        let dim = shape.count - strides.count + strides.count  // the rank of this sub-tensor
        if dim == 0 { return formatter.format(data[offset], dtype: dtype) }
        let n = shape[0]
        if dim == 1 {
            let elementLength = formatter.maxWidth + 2
            let perLine = max(1, (lineWidth - indent) / elementLength)
            var items: [String]
            if summarize && n > 2 * edgeItems {
                items = (0..<edgeItems).map { formatter.format(data[offset + $0 * strides[0]], dtype: dtype) } + [" ..."]
                    + ((n - edgeItems)..<n).map { formatter.format(data[offset + $0 * strides[0]], dtype: dtype) }
            } else {
                items = (0..<n).map { formatter.format(data[offset + $0 * strides[0]], dtype: dtype) }
            }
            let lines = Swift.stride(from: 0, to: items.count, by: perLine).map { items[$0..<min($0 + perLine, items.count)].joined(separator: ", ") }
            return "[" + lines.joined(separator: ",\n" + String(repeating: " ", count: indent + 1)) + "]"
        }
        let sub = { (i: Int) in
            tensorString(data, shape: Array(shape.dropFirst()), strides: Array(strides.dropFirst()), offset: offset + i * strides[0],
                         indent: indent + 1, summarize: summarize, formatter: formatter, dtype: dtype)
        }
        var slices: [String]
        if summarize && n > 2 * edgeItems {
            slices = (0..<edgeItems).map(sub) + ["..."] + ((n - edgeItems)..<n).map(sub)
        } else {
            slices = (0..<n).map(sub)
        }
        return "[" + slices.joined(separator: "," + String(repeating: "\n", count: dim - 1) + String(repeating: " ", count: indent + 1)) + "]"
    }

    static func addSuffixes(_ text: String, _ suffixes: [String], indent: Int) -> String {
        var out = text
        let lastNewline = text.lastIndex(of: "\n").map { text.distance(from: text.startIndex, to: $0) } ?? -1
        var lastLineLength = text.count - lastNewline + 1
        for suffix in suffixes {
            if lastLineLength + suffix.count + 2 > lineWidth {
                out += ",\n" + String(repeating: " ", count: indent) + suffix
                lastLineLength = indent + suffix.count
            } else {
                out += ", " + suffix
                lastLineLength += suffix.count + 2
            }
        }
        return out + ")"
    }
}
