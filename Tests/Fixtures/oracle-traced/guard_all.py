import torch
with model.trace("The Eiffel Tower is in the city of"):
    if torch.all(model.transformer.h[2].output[0] < 1e5):
        model.transformer.h[3].output[0][:] = 0
    h3 = model.transformer.h[3].output[0].save()
    out = model.lm_head.output.save()
print(h3.abs().sum())
