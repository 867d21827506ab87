/// SplitMix64: a small, fast, seedable generator, so simulations and generated data
/// are reproducible from `--seed`.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { self.state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform value in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// A stable uniform value in [0, 1) for a string and seed (FNV-1a then one mix):
    /// the same key always gets the same draw, as a gateway's verdict on a card does.
    public static func unit(for key: String, seed: UInt64) -> Double {
        var generator = SeededRandom(seed: fnv1a64(key, basis: 0xCBF2_9CE4_8422_2325 ^ seed))
        return generator.unit()
    }
}
