with model.trace() as tracer:
    with tracer.invoke("The Eiffel Tower is in the city of"):
        cache = tracer.cache(modules=[model.transformer.h[0], model.transformer.h[3].mlp])
        a = model.lm_head.output[:, -1].argmax(-1).save()
    with tracer.invoke("Hello world"):
        b = model.lm_head.output[:, -1].argmax(-1).save()
h0 = cache["model.transformer.h.0"].output[0]
print(h0.shape, cache["model.transformer.h.3.mlp"].output.shape, a.tolist(), b.tolist())
print(round(h0[1, -1, :4].sum().item(), 4))
