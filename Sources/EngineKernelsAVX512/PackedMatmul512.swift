// Long prompts' products over packed weights with AVX-512 (see Package.swift), called only on
// CPUs that have it. Twelve rows by one 16-column panel: twelve 16-lane accumulators, each
// weight load shared by twelve FMAs whose inputs come interleaved (one pointer, constant
// offsets: nothing for the loop to recompute).
//
// Each output element is computed exactly as in EngineKernels (one FMA per k, in order, from
// zero, then the bias), so a row's values are the same whichever kernel computed them.

import EngineKernels

typealias V16 = SIMD16<Float>

@inline(__always) func widen16(_ type: PanelType, _ p: UnsafeRawPointer) -> V16 {
    switch type {
    case .f32: return p.loadUnaligned(as: V16.self)
    case .bf16: return unsafeBitCast(SIMD16<UInt32>(truncatingIfNeeded: p.loadUnaligned(as: SIMD16<UInt16>.self)) &<< 16, to: V16.self)
    case .f16: return V16(p.loadUnaligned(as: SIMD16<Float16>.self))
    }
}

/// Rows per block.
public let wideBlockRows = 12

/// Rows interleaved for `packedMatmulWide`: each block of 12 rows of inp (M,K) as (K,12), so
/// that a step of k reads its twelve inputs from one place. Whole blocks only (M / 12 of them).
public func interleaveRows(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, m M: Int, k K: Int) {
    for block in 0..<(M / wideBlockRows) {
        let (o, x) = (out + block * K * wideBlockRows, inp + block * wideBlockRows * K)
        for k in 0..<K {
            for i in 0..<wideBlockRows { o[k * wideBlockRows + i] = x[i * K + k] }
        }
    }
}

/// out (M,N) = inp (M,K) @ W (K,N) + bias for the whole 12-row blocks of M (M / 12 * 12 rows),
/// given as `interleaveRows` wrote them, over full panels `panels` only (the caller computes
/// the rest with EngineKernels).
public func packedMatmulWide(_ out: UnsafeMutablePointer<Float>, interleaved: UnsafePointer<Float>, _ weight: UnsafeRawPointer, _ type: PanelType,
                             _ bias: UnsafePointer<Float>?, m M: Int, k K: Int, n N: Int, panels: Range<Int>) {
    switch type {
    case .f32: wide(.f32, out, interleaved, weight, bias, m: M, k: K, n: N, panels: panels)
    case .bf16: wide(.bf16, out, interleaved, weight, bias, m: M, k: K, n: N, panels: panels)
    case .f16: wide(.f16, out, interleaved, weight, bias, m: M, k: K, n: N, panels: panels)
    }
}

@inline(__always)
func wide(_ type: PanelType, _ out: UnsafeMutablePointer<Float>, _ xt: UnsafePointer<Float>, _ weight: UnsafeRawPointer,
          _ bias: UnsafePointer<Float>?, m M: Int, k K: Int, n N: Int, panels: Range<Int>) {
    let row = panelWidth * type.size, panelBytes = K * row
    for p in panels {
        let j = p * panelWidth
        let w = weight + p * panelBytes
        let b = bias.map { UnsafeRawPointer($0 + j).loadUnaligned(as: V16.self) } ?? V16()
        var r = 0
        while r + wideBlockRows <= M {
            var a0 = V16(), a1 = V16(), a2 = V16(), a3 = V16(), a4 = V16(), a5 = V16()
            var a6 = V16(), a7 = V16(), a8 = V16(), a9 = V16(), a10 = V16(), a11 = V16()
            var x = xt + r * K, wk = w
            for _ in 0..<K {
                let v = widen16(type, wk)
                a0 = a0.addingProduct(V16(repeating: x[0]), v); a1 = a1.addingProduct(V16(repeating: x[1]), v)
                a2 = a2.addingProduct(V16(repeating: x[2]), v); a3 = a3.addingProduct(V16(repeating: x[3]), v)
                a4 = a4.addingProduct(V16(repeating: x[4]), v); a5 = a5.addingProduct(V16(repeating: x[5]), v)
                a6 = a6.addingProduct(V16(repeating: x[6]), v); a7 = a7.addingProduct(V16(repeating: x[7]), v)
                a8 = a8.addingProduct(V16(repeating: x[8]), v); a9 = a9.addingProduct(V16(repeating: x[9]), v)
                a10 = a10.addingProduct(V16(repeating: x[10]), v); a11 = a11.addingProduct(V16(repeating: x[11]), v)
                x += wideBlockRows
                wk += row
            }
            let o = UnsafeMutableRawPointer(out + r * N + j), stride = N * 4
            for (i, a) in [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11].enumerated() {
                o.storeBytes(of: a + b, toByteOffset: i * stride, as: V16.self)
            }
            r += wideBlockRows
        }
    }
}
