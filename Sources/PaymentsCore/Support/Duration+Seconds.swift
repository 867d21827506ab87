extension Duration {
    /// The duration as fractional seconds (for SQL intervals, logs and rates).
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// A duration from fractional seconds, as flags give them.
    public static func seconds(fractional value: Double) -> Duration {
        .microseconds(Int64((value * 1_000_000).rounded()))
    }
}
