with model.trace("The Eiffel Tower is in the city of") as tracer:
    h0 = model.transformer.h[0].output[0]
    m = model.transformer.h[1].mlp(model.transformer.h[1].ln_2(h0))
    ms = m[0, -1, :4].save()
    fc = model.transformer.h[2].mlp.c_fc(model.transformer.h[2].ln_2.output)
    act = model.transformer.h[2].mlp.act(fc)
    same = (act - model.transformer.h[2].mlp.act.output).abs().max().save()
    qkv = model.transformer.h[3].attn.c_attn(model.transformer.h[3].ln_1.output)
    print(qkv.shape, fc.shape, act.shape)
    proj = model.transformer.h[3].attn.c_proj(qkv[:, :, :64])[0, -1, :4].save()
print(round(same.item(), 5))
