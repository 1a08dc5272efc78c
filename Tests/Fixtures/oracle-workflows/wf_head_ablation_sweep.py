import torch
prompt = "The Eiffel Tower is in the city of"
with model.trace(prompt):
    base = model.lm_head.output[0, -1].log_softmax(-1).save()
target = base.argmax().item()
effects = {}
for layer in [0, 2]:
    for head in range(4):
        with model.trace(prompt):
            x = model.transformer.h[layer].attn.c_proj.input
            B, S, D = x.shape
            x.view(B, S, 4, D // 4)[:, :, head, :] = 0
            lp = model.lm_head.output[0, -1].log_softmax(-1)[target].save()
        effects[(layer, head)] = round((lp - base[target]).item(), 4)
for k in sorted(effects):
    print(k, effects[k])
