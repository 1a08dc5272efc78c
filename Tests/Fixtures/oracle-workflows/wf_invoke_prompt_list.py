with model.trace() as tracer:
    with tracer.invoke(["The Eiffel Tower is in the city of", "Hello"]):
        print(model.transformer.h[0].output[0].shape)
        a = model.lm_head.output[:, -1].argmax(dim=-1).save()
    with tracer.invoke("One two"):
        b = model.lm_head.output[:, -1].argmax(dim=-1).save()
print(a, b)
