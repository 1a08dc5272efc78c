import torch
prompts = ["The cat sat on the mat", "A dog ran in the park", "Birds fly over the sea"]
with model.trace() as tracer:
    for p in prompts:
        with tracer.invoke(p):
            pass
    with tracer.invoke():
        mean = model.transformer.h[2].output[0].mean(dim=(0, 1)).save()
with model.trace("The Eiffel Tower is in the city of"):
    model.transformer.h[2].output[0][:, :] = mean
    ablated = model.lm_head.output[0, -1].argmax().save()
print(mean.shape, ablated.item())
