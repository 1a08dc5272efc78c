enc = model.tokenizer(["Hello world", "The Eiffel Tower is"], padding=True, return_tensors="pt")
print(enc["input_ids"], enc["attention_mask"])
print(model.tokenizer("Hello world")["input_ids"])
with model.trace([[15, 99, 7], [464, 412, 3]]) as tracer:
    a = model.transformer.h[0].output[0][:, -1, :3].save()
with model.trace(enc) as tracer:
    b = model.transformer.h[0].output[0][:, -1, :3].save()
with model.trace([464, 412, 3]) as tracer:
    c = model.transformer.h[0].output[0][:, -1, :3].save()
with model.generate(max_new_tokens=2) as tracer:
    with tracer.invoke([5, 6, 7]):
        e = model.transformer.h[0].output[0][:, -1, :3].save()
    with tracer.invoke():
        f = model.transformer.h[0].output[0][:, -1, :3].save()
print(a.shape, b.shape, c.shape, e.shape, f.shape)
