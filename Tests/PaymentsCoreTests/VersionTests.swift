import Testing
@testable import PaymentsCore
@Test func version() { #expect(!PaymentsCoreVersion.value.isEmpty) }
