import nnsight
import torch
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    norms = {}
    for step in tracer.iter[0:4]:
        for layer in [0, 3]:
            norms[(step, layer)] = model.transformer.h[layer].output[0][0, -1].norm().item()
    norms = nnsight.save(norms)
print(sorted(norms.keys()))
print([round(norms[(s, 3)] - norms[(s, 0)], 3) for s in range(4)])
