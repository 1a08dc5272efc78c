with model.session() as session:
    with model.trace("Hello world") as t1:
        v = model.transformer.h[1].output[0][0, -1].save()
    with model.generate("The Eiffel Tower is in the city of", max_new_tokens=3) as t2:
        for step in t2.iter[0:3]:
            model.transformer.h[1].output[0][:, -1] += v
        ids = model.generator.output.save()
print(v.shape, ids[0, -3:].tolist())
