import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        h = model.transformer.h[2].output[0]
        direction = h[:, -1, :] / h[:, -1, :].norm(dim=-1, keepdim=True)
        model.transformer.h[2].output[0][:, -1, :] = h[:, -1, :] - 0.5 * direction
    out = model.generator.output.save()
