with model.trace("The Eiffel Tower is in the city of") as tracer:
    b = model.transformer.h[1]
    norms = {}
    for name, m in [("ln_1", b.ln_1), ("attn.c_attn", b.attn.c_attn), ("attn.c_proj", b.attn.c_proj),
                    ("attn.resid_dropout", b.attn.resid_dropout), ("ln_2", b.ln_2), ("mlp.c_fc", b.mlp.c_fc),
                    ("mlp.act", b.mlp.act), ("mlp.c_proj", b.mlp.c_proj), ("mlp.dropout", b.mlp.dropout)]:
        norms[name] = (m.input.norm().item(), m.output.norm().item())
    blk = b.output[0][0, -1, :4].save()
    print({k: (round(v[0], 2), round(v[1], 2)) for k, v in norms.items()})
    print(model.transformer.ln_f.input.shape, model.lm_head.output.shape)
