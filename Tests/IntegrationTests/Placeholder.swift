import Testing
import PaymentsCore
@Test func placeholder() { }
