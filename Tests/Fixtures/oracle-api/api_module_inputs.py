with model.trace("The Eiffel Tower is in the city of") as tracer:
    bi = model.transformer.h[1].inputs
    h = bi[0][0][0, -1, :3].save()
    mi = model.transformer.h[1].mlp.inputs
    print(type(mi), len(mi), type(mi[0]), len(mi[0]), mi[1])
    x = mi[0][0][0, -1, :3].save()
    li = model.lm_head.inputs
    print(len(li[0]), li[1], li[0][0].shape)
print(x.shape, h.shape)
print(model.transformer.h)
