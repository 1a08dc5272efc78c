with model.trace("Hello world") as tracer:
    o = model.output.save()
    l0 = model.output[0][0, -1, :3].save()
    lg = model.output.logits[0, -1].argmax().save()
print(type(o), o.logits.shape, lg.item())
with model.trace("Hello world") as tracer:
    out = tracer.result.save()
print(out.logits.shape)
print(model.config.n_embd, model.config.n_layer, model.config.n_head, model.config.vocab_size)
