with model.trace("Hello world") as tracer:
    c2 = tracer.cache(include_inputs=True)
print(len(c2.keys()), list(c2.keys())[:8])
print(c2["model.transformer.h.0.ln_1"].output.shape, type(c2["model.transformer.h.0"].inputs))
print(c2["model.transformer.h.0.ln_1"].inputs[0][0].shape)
print(c2.model.transformer.h[0].output[0].shape, c2.model.output.logits.shape)
ln = c2["model.transformer.ln_f"].output[0, -1, :4]
