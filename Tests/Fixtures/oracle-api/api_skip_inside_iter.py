with model.generate("The Eiffel Tower is in the city of", max_new_tokens=4) as tracer:
    for step in tracer.iter[1:3]:
        model.transformer.h[2].skip(model.transformer.h[1].output)
    ids = model.generator.output.save()
print(ids[0, -4:].tolist())
