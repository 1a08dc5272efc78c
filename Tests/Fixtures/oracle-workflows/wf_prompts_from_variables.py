clean = "The Eiffel Tower is in the city of"
corrupt = "The Colosseum is in"
with model.trace() as tracer:
    with tracer.invoke(clean):
        n = model.transformer.h[1].output[0].shape[1]
        print(n)
        h = model.transformer.h[1].output[0][:, -1].save()
    with tracer.invoke(corrupt):
        print(model.transformer.h[1].output[0].shape)
        logits = model.lm_head.output[0, -1].save()
print(h.shape, logits.argmax().item())
