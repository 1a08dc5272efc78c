with model.generate("The Eiffel Tower is in the city of", max_new_tokens=2) as tracer:
    for step in tracer.iter[:2]:
        print(step, model.transformer.drop.input.shape)
        d = model.transformer.drop.output[0, -1, :4].save()
        r = model.transformer.h[0].attn.resid_dropout.output[0, -1, :4].save()
        m = model.transformer.h[0].mlp.dropout.output[0, -1, :4].save()
        print(model.transformer.h[1].mlp.dropout.input.shape)
print(d.shape, r.shape, m.shape)
