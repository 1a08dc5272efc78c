import torch
source = "The Eiffel Tower is in the city of"
target = "cat -> cat; dog -> dog; x ->"
with model.trace(source):
    h = model.transformer.h[1].output[0][0, -1].save()
with model.generate(target, max_new_tokens=3) as tracer:
    model.transformer.h[1].output[0][0, -1] = h
    gen = tracer.result.save()
n = len(model.tokenizer.encode(target))
print(gen[0, n:].tolist(), model.tokenizer.decode(gen[0, n:]))
