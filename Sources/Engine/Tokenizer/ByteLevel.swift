/// GPT-2's reversible map from bytes to printable Unicode scalars (`bytes_to_unicode`): printable
/// Latin-1 bytes map to themselves, the other 68 to U+0100 onwards, so every byte string is a
/// string of visible characters that BPE can merge.
enum ByteLevel {
    static let byteToScalar: [Unicode.Scalar] = {
        var printable = Set<Int>()
        printable.formUnion(33...126)
        printable.formUnion(161...172)
        printable.formUnion(174...255)
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next = 256
        for byte in 0..<256 {
            if printable.contains(byte) {
                table[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                table[byte] = Unicode.Scalar(UInt32(next))!
                next += 1
            }
        }
        return table
    }()

    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (byte, scalar) in byteToScalar.enumerated() { map[scalar.value] = UInt8(byte) }
        return map
    }()

    static func encode<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(byteToScalar[Int(b)]) }
        return String(s)
    }
}
