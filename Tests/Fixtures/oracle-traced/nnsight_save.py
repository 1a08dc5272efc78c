import nnsight
import torch
with torch.no_grad():
    with model.trace("Hello world"):
        h = nnsight.save(model.transformer.h[-1].output[0])
        l = nnsight.save(model.lm_head.output[0, -1].argmax())
        lst = nnsight.save([1, 2, 3])
print(h.shape, l, lst)
