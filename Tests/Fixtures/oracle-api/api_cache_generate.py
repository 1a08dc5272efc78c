with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
    cache = tracer.cache(modules=[model.transformer.h[0], model.transformer.h[1].mlp])
print(list(cache.keys()))
x = cache["model.transformer.h.0"]
print(len(x.output), x.output[0][0].shape, x.output[1][0].shape)
print(x.inputs)
print([round(v, 3) for v in cache["model.transformer.h.1.mlp"].output[1][0, -1, :3].tolist()])
