/// FNV-1a, 64 bits: a stable hash of a string (Swift's Hasher is randomised per process).
public func fnv1a64(_ text: String, basis: UInt64 = 0xCBF2_9CE4_8422_2325) -> UInt64 {
    var hash = basis
    for byte in text.utf8 {
        hash ^= UInt64(byte)
        hash &*= 0x0000_0100_0000_01B3
    }
    return hash
}
