with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    out = model.transformer.h[0].mlp.output
    model.transformer.h[0].mlp.output = out * 2
    a = model.transformer.h[0].mlp.output[0, -1, :4].save()
    model.transformer.h[1].output = (model.transformer.h[1].output[0] + 1,)
    b = model.transformer.h[1].output[0][0, -1, :4].save()
    model.transformer.h[2].ln_1.input = model.transformer.h[2].ln_1.input * 0.5
    c = model.transformer.h[2].ln_1.output[0, -1, :4].save()
    h2 = model.transformer.h[2].output[0][0, -1, :4].save()
    ids = model.generator.output.save()
print(ids[0, -3:].tolist())
