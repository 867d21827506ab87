/// Why a payment request was refused: a stable machine code, the field, and a message.
public struct PaymentValidationError: Error, Sendable, Equatable, CustomStringConvertible {
    public var code: String
    public var field: String?
    public var message: String
    public init(code: String, field: String?, message: String) {
        self.code = code
        self.field = field
        self.message = message
    }
    public var description: String { message }
}
