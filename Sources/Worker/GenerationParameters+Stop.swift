import Wire

extension Nnsight_V1_GenerationParameters {
    /// Whether generation goes on after step `step` (0-based): not at `max_new_tokens`, and not
    /// once every row has produced eos. The one rule for the coordinator's record of a trace and
    /// for the last stage, which starts each next step itself.
    ///
    /// ```swift
    /// generation.continues(after: 2, finished: [true, false])   // maxNewTokens 5 -> true
    /// ```
    public func continues(after step: Int, finished: [Bool]) -> Bool {
        step + 1 < Int(maxNewTokens) && !(hasEosTokenID && finished.allSatisfy { $0 })
    }
}
