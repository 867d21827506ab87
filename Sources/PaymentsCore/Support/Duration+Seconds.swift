extension Duration {
    /// The duration as fractional seconds (for SQL intervals, logs and rates).
    public var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    /// A duration from fractional seconds, as flags give them; clamped to ±100 years so
    /// no input can overflow (range checks then refuse it with a message).
    public static func seconds(fractional value: Double) -> Duration {
        let limit = 100 * 365 * 86_400.0
        let clamped = value.isNaN ? 0 : min(max(value, -limit), limit)
        return .microseconds(Int64((clamped * 1_000_000).rounded()))
    }
}
