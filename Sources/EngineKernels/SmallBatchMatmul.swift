// Matrix products for a few rows (a decode step of a small batch, a short prompt), compiled for
// AVX2 + FMA (see Package.swift) and called only on CPUs that have them.
//
// Why not BLAS: for M of 2..16 rows OpenBLAS's sgemm spends more time packing the weight matrix
// than multiplying, and reads it two to three times; these kernels stream each weight once.

public typealias V8 = SIMD8<Float>

@inline(__always) func load(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
@inline(__always) func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }

@inline(__always) func horizontalSum(_ v: V8) -> Float {
    let s4 = v.lowHalf + v.highHalf
    let s2 = s4.lowHalf + s4.highHalf
    return s2[0] + s2[1]
}

/// out (M,N) = inp (M,K) @ weight (K,N) + bias (N), for small M, the output columns `columns`
/// only (callers split the columns across threads; bounds multiples of 16 but the last).
/// Rows in blocks of 4, columns in blocks of 16 (two 8-lane accumulators per row):
/// 8 accumulators, each weight read once per 4 rows from cache and once from memory.
public func smallMatmul(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                        _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
                        m M: Int, k K: Int, n N: Int, columns: Range<Int>) {
    var j = columns.lowerBound
    while j + 16 <= columns.upperBound {
        var r = 0
        while r < M {
            let rows = min(4, M - r)
            block4x16(out + r * N + j, inp + r * K, weight + j, bias.map { $0 + j }, rows: rows, k: K, n: N)
            r += rows
        }
        j += 16
    }
    // Columns left over (N not a multiple of 16): plain loops.
    while j < columns.upperBound {
        for r in 0..<M {
            var s: Float = bias?[j] ?? 0
            for k in 0..<K { s += inp[r * K + k] * weight[k * N + j] }
            out[r * N + j] = s
        }
        j += 1
    }
}

@inline(__always)
func block4x16(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
               _ bias: UnsafePointer<Float>?, rows: Int, k K: Int, n N: Int) {
    var a0 = V8(), b0 = V8(), a1 = V8(), b1 = V8(), a2 = V8(), b2 = V8(), a3 = V8(), b3 = V8()
    let x0 = inp, x1 = inp + (rows > 1 ? K : 0), x2 = inp + (rows > 2 ? 2 * K : 0), x3 = inp + (rows > 3 ? 3 * K : 0)
    var wk = w
    for k in 0..<K {
        let lo = load(wk), hi = load(wk + 8)
        let s0 = V8(repeating: x0[k]), s1 = V8(repeating: x1[k]), s2 = V8(repeating: x2[k]), s3 = V8(repeating: x3[k])
        a0 = a0.addingProduct(s0, lo); b0 = b0.addingProduct(s0, hi)
        a1 = a1.addingProduct(s1, lo); b1 = b1.addingProduct(s1, hi)
        a2 = a2.addingProduct(s2, lo); b2 = b2.addingProduct(s2, hi)
        a3 = a3.addingProduct(s3, lo); b3 = b3.addingProduct(s3, hi)
        wk += N
    }
    let blo = bias.map { load($0) } ?? V8(), bhi = bias.map { load($0 + 8) } ?? V8()
    store(a0 + blo, out); store(b0 + bhi, out + 8)
    if rows > 1 { store(a1 + blo, out + N); store(b1 + bhi, out + N + 8) }
    if rows > 2 { store(a2 + blo, out + 2 * N); store(b2 + bhi, out + 2 * N + 8) }
    if rows > 3 { store(a3 + blo, out + 3 * N); store(b3 + bhi, out + 3 * N + 8) }
}

/// out (M,V) = inp (M,C) @ table (V,C)^T, for small M: logits from the tied embedding, the
/// output columns (table rows) `rows` only. Each table row is read once and dotted with every
/// input row (which stay in L1).
public func smallMatmulTransposed(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
                                  _ table: UnsafePointer<Float>, m M: Int, k C: Int, n V: Int, rows: Range<Int>) {
    for v in rows {
        let t = table + v * C
        var r = 0
        while r < M {
            // Two input rows per pass over the table row.
            let x0 = inp + r * C, x1 = inp + (r + 1 < M ? (r + 1) * C : r * C)
            var s0 = V8(), s1 = V8()
            var c = 0
            while c + 8 <= C {
                let tv = load(t + c)
                s0 = s0.addingProduct(load(x0 + c), tv)
                s1 = s1.addingProduct(load(x1 + c), tv)
                c += 8
            }
            var d0 = horizontalSum(s0), d1 = horizontalSum(s1)
            while c < C {
                d0 += x0[c] * t[c]
                d1 += x1[c] * t[c]
                c += 1
            }
            out[r * V + v] = d0
            if r + 1 < M { out[(r + 1) * V + v] = d1 }
            r += 2
        }
    }
}
