import torch
import nnsight
with model.trace("The Eiffel Tower is in the city of"):
    hs = model.transformer.h[1].output[0]
    print("inside", hs.shape)
    print(hs.ndim, hs.dtype, len(hs), hs.size(-1), hs.shape[1])
    shape = nnsight.save(list(hs.shape))
    logits = model.lm_head.output
    print("logits", logits.shape, logits.size())
    out = hs.save()
print("after", out.shape, shape)
