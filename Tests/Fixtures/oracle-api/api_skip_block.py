with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    h0 = model.transformer.h[0].output[0]
    model.transformer.h[1].skip((h0,))
    b = model.transformer.h[1].output[0][0, -1, :4].save()
    c = model.transformer.h[2].output[0][0, -1, :4].save()
    ids = model.generator.output.save()
print(ids[0, -3:].tolist())
