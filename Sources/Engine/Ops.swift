import CBLAS
import EngineKernels
import EngineKernelsAVX512
import Foundation

// The forward pass's building blocks, each a loop over contiguous row-major buffers
// (B = batch, T = tokens this step, C = channels). Matmuls run in EngineKernels over packed
// weights; prompt attention in OpenBLAS.
enum Ops {
    /// Whether this CPU runs the AVX2 + FMA kernels of EngineKernels (checked at run time).
    static let hasKernels = BLASRuntime.cpuFlags.isSuperset(of: ["avx2", "fma", "f16c"])
    /// And the AVX-512 ones of EngineKernelsAVX512.
    static let hasWideKernels = hasKernels && BLASRuntime.cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq"])

    /// out = layernorm(inp) * weight + bias over the last dim. (N,C) -> (N,C); may alias.
    static func layerNorm(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                          _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
                          rows: Int, channels C: Int, eps: Float) {
        for r in 0..<rows {
            let x = inp + r * C
            let y = out + r * C
            var mean: Float = 0
            for i in 0..<C { mean += x[i] }
            mean /= Float(C)
            var variance: Float = 0
            for i in 0..<C {
                let d = x[i] - mean
                variance += d * d
            }
            variance /= Float(C)
            let rstd = 1 / (variance + eps).squareRoot()
            for i in 0..<C { y[i] = (x[i] - mean) * rstd * weight[i] + bias[i] }
        }
    }

    /// The threads products split over. OpenBLAS runs single-threaded inside each part: its own
    /// threads would keep spinning between calls (see ComputePool).
    static let pool: ComputePool = {
        openblas_set_num_threads(1)
        return ComputePool.shared
    }()

    /// out (M,N) = inp (M,K) @ W (K,N) + bias (N), the panels of W split over the pool. Every
    /// element is computed the same way whatever M and the split (see EngineKernels), so a
    /// request's rows come out identical alone or stacked with others.
    static func matmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: PackedMatrix,
                       _ bias: UnsafePointer<Float>?, m M: Int, scratch: ScratchBuffer) {
        let (K, N) = (w.k, w.n)
        guard hasKernels else { return portableMatmul(out, inp, w, bias, m: M) }
        let base = UnsafeRawPointer(w.base), type = w.type.panelType
        // Long prompts: whole 12-row blocks with AVX-512, over full panels; the rest below.
        let wide = hasWideKernels && M >= wideBlockRows ? M / wideBlockRows * wideBlockRows : 0
        let fullPanels = N / panelWidth
        let interleaved = UnsafePointer(scratch.reserve(wide * K))
        if wide > 0 { interleaveRows(UnsafeMutablePointer(mutating: interleaved), inp, m: wide, k: K) }
        pool.split(count: w.panels, granule: 1) { panels in
            if wide > 0 {
                let full = panels.clamped(to: 0..<fullPanels)
                packedMatmulWide(out, interleaved: interleaved, base, type, bias, m: wide, k: K, n: N, panels: full)
                if full.upperBound < panels.upperBound {
                    packedMatmul(out, inp, base, type, bias, m: wide, k: K, n: N, panels: full.upperBound..<panels.upperBound)
                }
            }
            if wide < M {
                packedMatmul(out + wide * N, inp + wide * K, base, type, bias, m: M - wide, k: K, n: N, panels: panels)
            }
        }
    }

    /// CPUs without AVX2 + FMA: W unpacked, then OpenBLAS (slow, but no product is refused).
    private static func portableMatmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: PackedMatrix,
                                       _ bias: UnsafePointer<Float>?, m M: Int) {
        let (K, N) = (w.k, w.n)
        let full = UnsafeMutablePointer<Float>.allocate(capacity: K * N)
        defer { full.deallocate() }
        w.unpack(into: full)
        for r in 0..<M { fill(out + r * N, bias: bias, count: N) }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(N), Int32(K), 1, inp, Int32(K), full, Int32(N), 1, out, Int32(N))
    }

    /// out = bias, or zeros without one: what a product accumulates onto.
    @inline(__always)
    static func fill(_ out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, count: Int) {
        if let bias { out.update(from: bias, count: count) } else { out.update(repeating: 0, count: count) }
    }

    /// out (M,V) = inp (M,C) @ table (V,C)^T: logits from the tied embedding, the table's rows
    /// split over the pool; like `matmul`, independent of M.
    static func matmulTransposed(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ table: WeightTable, m M: Int) {
        let (C, V) = (table.columns, table.rows)
        pool.split(count: V, granule: 64) { rows in
            if hasKernels {
                tableProduct(out, inp, UnsafeRawPointer(table.base), table.type.panelType, m: M, k: C, n: V, rows: rows)
                return
            }
            let row = UnsafeMutablePointer<Float>.allocate(capacity: C)
            defer { row.deallocate() }
            for v in rows {
                table.row(v, into: row)
                for r in 0..<M { out[r * V + v] = cblas_sdot(Int32(C), inp + r * C, 1, row, 1) }
            }
        }
    }

    /// a += b, elementwise.
    static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { a[i] += b[i] }
    }

    /// Softmax over `count` values in place, where `valid(j)` is false for masked keys.
    /// A row with no valid key becomes all zeros.
    static func maskedSoftmax(_ x: UnsafeMutablePointer<Float>, count: Int, valid: (Int) -> Bool) {
        var maxValue = -Float.infinity
        for j in 0..<count where valid(j) { maxValue = max(maxValue, x[j]) }
        guard maxValue > -Float.infinity else {
            x.update(repeating: 0, count: count)
            return
        }
        var sum: Float = 0
        for j in 0..<count {
            let e = valid(j) ? expf(x[j] - maxValue) : 0
            x[j] = e
            sum += e
        }
        let inv = 1 / sum
        for j in 0..<count { x[j] *= inv }
    }
}
