import Engine
import Wire

extension Nnsight_V1_StepActivations {
    /// Stage 0's input for `step`: the step's token ids, position ids and mask as int64 `[B, T]`
    /// tensors, with the values other stages sent on. The coordinator sends the prompt pass this
    /// way; the last stage of a ring every next step.
    public init(step: Int, input: StepInput, values: [Nnsight_V1_CrossValue] = []) {
        self.init()
        let shape = [input.batch, input.length]
        self.step = UInt32(step)
        tokens = HostTensor(shape: shape, ints: input.tokens.map(Int64.init)).wire
        positions = HostTensor(shape: shape, ints: input.positions.map(Int64.init)).wire
        mask = HostTensor(shape: shape, ints: input.mask.map(Int64.init)).wire
        self.values = values
    }
}
