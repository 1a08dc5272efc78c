import torch
prompt = "The Eiffel Tower is in the city of"
with model.trace(prompt):
    base = model.lm_head.output[0, -1].log_softmax(-1).save()
target = base.argmax().item()
drops = []
for layer in range(4):
    with model.trace(prompt):
        model.transformer.h[layer].mlp.output[:] = 0
        lp = model.lm_head.output[0, -1].log_softmax(-1)[target].save()
    drops.append(round((base[target] - lp).item(), 4))
print(target, drops, max(range(4), key=lambda i: drops[i]))
