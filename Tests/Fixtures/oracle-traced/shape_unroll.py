norms = []
with model.trace("The Eiffel Tower is in the city of"):
    hs = model.transformer.h[2].output[0]
    for i in range(hs.shape[1]):
        norms.append(hs[0, i].norm().save())
    n = len(norms)
    print(n, len(norms))
print(len(norms))
