import Hummingbird

/// The API's own headers.
extension HTTPFields.Element.Name {
    public static let idempotencyKey = Self("Idempotency-Key")!
    public static let freshnessToken = Self("X-Freshness-Token")!
    public static let servedBy = Self("X-Served-By")!
    public static let readSource = Self("X-Read-Source")!
    public static let replicaLag = Self("X-Replica-Lag-Seconds")!
    public static let readFallback = Self("X-Read-Fallback")!
    public static let eTag = Self("ETag")!
    public static let ifNoneMatch = Self("If-None-Match")!
    public static let cacheControl = Self("Cache-Control")!
}
