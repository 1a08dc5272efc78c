with model.trace("The Eiffel Tower is in the city of") as tracer:
    emb = model.transformer.wte(model.transformer.wte.input)[0, -1, :4].save()
    wte_out = model.transformer.wte.output[0, -1, :4].save()
    print(model.lm_head.weight.shape, model.transformer.wte.weight.shape, model.transformer.wpe.weight.shape)
    print(model.transformer.h[0].attn.c_attn.weight.shape, model.transformer.h[0].attn.c_attn.bias.shape)
    print(model.transformer.h[0].mlp.c_proj.weight.shape, model.transformer.ln_f.bias.shape)
    g = model.transformer.ln_f.weight[:4].save()
    hs = model.transformer.ln_f.output[0, -1]
    manual = (hs @ model.lm_head.weight.T)[:5].save()
    direct = model.lm_head.output[0, -1, :5].save()
print(g.shape, manual.shape, round((manual - direct).abs().max().item(), 4))
