with model.generate(max_new_tokens=2) as tracer:
    with tracer.invoke("Hello world"):
        a = model.transformer.h[0].output[0]
        print("a", a.shape)
        sa = a[:, -1].save()
    with tracer.invoke("The Eiffel Tower is in the city of"):
        b = model.transformer.h[0].output[0]
        print("b", b.shape)
        sb = b[:, -1].save()
print(sa.shape, sb.shape)
