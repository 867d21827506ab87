extension Array {
    /// The elements in order, in arrays of `size` (the last may be shorter): one
    /// transaction each where a whole batch would hold its locks too long.
    func chunks(of size: Int) -> [[Element]] {
        precondition(size > 0, "a chunk holds at least one element")
        return stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}
