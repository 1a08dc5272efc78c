results = []
with model.trace("The Eiffel Tower is in the city of") as tracer:
    inp = model.transformer.h[1].attn.c_proj.input
    B, S, D = inp.shape
    heads = inp.view(B, S, 4, D // 4)
    heads[:, :, 2, :] = 0
    out = model.lm_head.output[0, -1].save()
with model.trace("The Eiffel Tower is in the city of"):
    base = model.lm_head.output[0, -1].save()
print(round((out - base).abs().max().item(), 4))
