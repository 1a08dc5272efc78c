with model.generate(max_new_tokens=3) as tracer:
    with tracer.invoke("The Eiffel Tower is in the city of"):
        a = model.transformer.h[1].output[0][:, -1, :3].save()
    with tracer.invoke("Hello"):
        b = model.transformer.h[1].output[0][:, -1, :3].save()
    with tracer.invoke():
        both = model.transformer.h[1].output[0][:, -1, :3].save()
        out = model.generator.output.save()
print(both.shape, out.shape)
print(model.tokenizer.batch_decode(out[:, -3:]))
