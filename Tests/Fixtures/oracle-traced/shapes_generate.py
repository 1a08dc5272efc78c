shapes = []
with model.generate("Hello world", max_new_tokens=3) as tracer:
    for step in tracer.iter[:3]:
        out = model.transformer.h[0].output[0]
        shapes.append(list(out.shape))
        print(step, out.shape)
print(shapes)
