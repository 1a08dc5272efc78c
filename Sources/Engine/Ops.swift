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

    /// out (M,N) = inp (M,K) @ weight (K,N) + bias (N). Matrix-vector kernel for one row:
    /// sgemm is several times slower than sgemv at M = 1.
    static func matmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                       _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                       m M: Int, k K: Int, n N: Int) {
        if M > 1 && M <= smallBatchLimit && hasSmallBatchKernels {
            return smallMatmul(out, inp, weight, bias, m: M, k: K, n: N, threads: BLASRuntime.threads)
        }
        for r in 0..<M {
            if let bias { (out + r * N).update(from: bias, count: N) } else { (out + r * N).update(repeating: 0, count: N) }
        }
        if M == 1 {
            cblas_sgemv(CblasRowMajor, CblasTrans, Int32(K), Int32(N), 1, weight, Int32(N), inp, 1, 1, out, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(M), Int32(N), Int32(K),
                        1, inp, Int32(K), weight, Int32(N), 1, out, Int32(N))
        }
    }

    /// out (M,V) = inp (M,C) @ table (V,C)^T: logits from the tied embedding.
    static func matmulTransposed(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                 _ table: UnsafePointer<Float>, m M: Int, k C: Int, n V: Int) {
        if M == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(V), Int32(C), 1, table, Int32(C), inp, 1, 0, out, 1)
        } else if M <= smallBatchLimit && hasSmallBatchKernels {
            smallMatmulTransposed(out, inp, table, m: M, k: C, n: V, threads: BLASRuntime.threads)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(M), Int32(V), Int32(C),
                        1, inp, Int32(C), table, Int32(C), 0, out, Int32(V))
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
