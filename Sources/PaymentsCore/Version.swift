public enum PaymentsCoreVersion { public static let value = "0.1.0" }
