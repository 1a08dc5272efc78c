prompts = ["The Eiffel Tower is in the city of", "Hello there", "One two three four five"]
with model.trace() as tracer:
    shapes = []
    for p in prompts:
        with tracer.invoke(p):
            shapes.append(model.transformer.h[0].output[0].shape)
            last = model.lm_head.output[:, -1].argmax(dim=-1).save()
    print(shapes)
print(last)
