with model.trace("The Eiffel Tower is in the city of"):
    a = model.transformer.h[1].output[0][0, -1, :4].save()
    b = model.transformer.h[1].mlp.output[0, -1, :4].save()
print(a.shape, b.shape)
