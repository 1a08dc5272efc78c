import torch
with model.trace("I love"):
    a = model.transformer.h[1].output[0][0, -1].save()
with model.trace("I hate"):
    b = model.transformer.h[1].output[0][0, -1].save()
v = a - b
results = {}
for alpha in [0.0, 2.0, 8.0]:
    with model.generate("The movie was", max_new_tokens=3) as tracer:
        for step in tracer.iter[0:3]:
            model.transformer.h[1].output[0][:, -1] += alpha * v
        ids = tracer.result.save()
    results[alpha] = ids[0, -3:].tolist()
print(results)
