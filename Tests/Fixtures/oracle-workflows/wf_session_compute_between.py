import torch
with model.session() as session:
    with model.trace("The Eiffel Tower is in the city of"):
        h1 = model.transformer.h[2].output[0][:, -1]
    with model.trace("Madrid is the capital of"):
        h2 = model.transformer.h[2].output[0][:, -1]
    direction = (h1 - h2) / (h1 - h2).norm()
    with model.trace("Berlin is a city in"):
        model.transformer.h[2].output[0][:, -1] += 3 * direction
        out = model.lm_head.output[0, -1].argmax().save()
    d = direction.save()
print(out.item(), d.shape, round(d.norm().item(), 4))
