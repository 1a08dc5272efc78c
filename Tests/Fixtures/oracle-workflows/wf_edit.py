import torch
with model.trace("The Eiffel Tower is in the city of"):
    base = model.lm_head.output[0, -1].save()
with model.edit() as (tracer, edited):
    edited.transformer.h[1].output[0][:] = 0
with edited.trace("The Eiffel Tower is in the city of"):
    out = edited.lm_head.output[0, -1].save()
with model.trace("The Eiffel Tower is in the city of"):
    again = model.lm_head.output[0, -1].save()
print(torch.equal(base, again), torch.equal(base, out))
with model.edit(inplace=True):
    model.transformer.h[1].output[0][:] = 0
with model.trace("The Eiffel Tower is in the city of"):
    inplace = model.lm_head.output[0, -1].save()
print(torch.equal(inplace, out))
model.clear_edits()
with model.trace("The Eiffel Tower is in the city of"):
    cleared = model.lm_head.output[0, -1].save()
print(torch.equal(cleared, base))
