with model.trace("The Eiffel Tower is in the city of") as tracer:
    a = model.transformer.h[0].output[0][0, -1, :4].save()
    tracer.stop()
    print("never")
print(a.shape)
with model.generate("The Eiffel Tower is in the city of", max_new_tokens=5) as tracer:
    hs = list().save()
    for step in tracer.iter[:]:
        hs.append(model.transformer.h[0].output[0][0, -1, 0])
        if step == 1:
            tracer.stop()
print(len(hs))
