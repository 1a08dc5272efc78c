import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
    cache = tracer.cache(modules=[model.transformer.h[3]])
    out = tracer.result.save()
steps = cache["model.transformer.h.3"].output
print(len(steps), steps[0][0].shape, steps[1][0].shape)
