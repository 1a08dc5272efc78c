import CBLAS
import EngineKernels
import Foundation

// The forward pass's building blocks, each a loop over contiguous row-major buffers
// (B = batch, T = tokens this step, C = channels). Matmuls go to OpenBLAS.
enum Ops {
    /// Rows up to which the AVX2 small-batch kernels beat OpenBLAS's sgemm (which packs the
    /// whole weight matrix on every call).
    static let smallBatchLimit = 16
    static let hasSmallBatchKernels = BLASRuntime.cpuFlags.isSuperset(of: ["avx2", "fma"])

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

    /// out (M,N) = inp (M,K) @ weight (K,N) + bias (N). `scratch` holds partial sums of one row.
    static func matmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                       _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                       m M: Int, k K: Int, n N: Int, scratch: ScratchBuffer) {
        if M == 1 { return matvec(out, inp, weight, bias, k: K, n: N, scratch: scratch) }
        if M <= smallBatchLimit && hasSmallBatchKernels {
            return pool.split(count: N, granule: 16) { columns in
                smallMatmul(out, inp, weight, bias, m: M, k: K, n: N, columns: columns)
            }
        }
        pool.split(count: N, granule: 16) { columns in
            let (j, n) = (columns.lowerBound, columns.count)
            for r in 0..<M { fill(out + r * N + j, bias: bias.map { $0 + j }, count: n) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(n), Int32(K),
                        1, inp, Int32(K), weight + j, Int32(N), 1, out + j, Int32(N))
        }
    }

    /// out (N) = inp (K) @ weight (K,N) + bias (N), in sgemv (sgemm is several times slower at
    /// one row). Split over the pool by blocks of weight rows, which are contiguous in memory,
    /// each part leaving a partial sum: splitting by columns reads every row in short pieces
    /// and was about 10 % slower. The parts depend only on `threads`, so results do too.
    static func matvec(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                       _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                       k K: Int, n N: Int, scratch: ScratchBuffer) {
        let parts = pool.parts(blocks: K / 64)
        guard parts > 1 else {
            fill(out, bias: bias, count: N)
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K), Int32(N), 1, weight, Int32(N), inp, 1, 1, out, 1)
            return
        }
        let partial = scratch.reserve(parts * N)  // (parts, N)
        pool.parallel(parts: parts) { p, _ in
            let k0 = K * p / parts, k1 = K * (p + 1) / parts
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k1 - k0), Int32(N), 1, weight + k0 * N, Int32(N),
                        inp + k0, 1, 0, partial + p * N, 1)
        }
        fill(out, bias: bias, count: N)
        for p in 0..<parts { add(out, partial + p * N, count: N) }
    }

    /// out = bias, or zeros without one: what a product accumulates onto.
    @inline(__always)
    static func fill(_ out: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, count: Int) {
        if let bias { out.update(from: bias, count: count) } else { out.update(repeating: 0, count: count) }
    }

    /// out (M,V) = inp (M,C) @ table (V,C)^T: logits from the tied embedding.
    static func matmulTransposed(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                 _ table: UnsafePointer<Float>, m M: Int, k C: Int, n V: Int) {
        pool.split(count: V, granule: 64) { rows in
            let (v, n) = (rows.lowerBound, rows.count)
            if M == 1 {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(C), 1, table + v * C, Int32(C), inp, 1, 0, out + v, 1)
            } else if M <= smallBatchLimit && hasSmallBatchKernels {
                smallMatmulTransposed(out, inp, table, m: M, k: C, n: V, rows: rows)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(n), Int32(C),
                            1, inp, Int32(C), table + v * C, Int32(C), 0, out + v, Int32(V))
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
