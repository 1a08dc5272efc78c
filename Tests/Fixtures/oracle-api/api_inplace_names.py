with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        h = model.transformer.h[0].output[0]
        h += 1.0
        v = model.transformer.h[1].output[0][:, -1]
        v *= 0.5
    ids = model.generator.output.save()
print(ids[0, -3:].tolist())
