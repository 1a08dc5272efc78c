with model.trace("The Eiffel Tower is in the city of") as tracer:
    x = model.transformer.h[1].mlp.input
    model.transformer.h[1].mlp.input = x * 0
    mlp_out = model.transformer.h[1].mlp.output[0, -1, :4].save()
    model.transformer.h[2].ln_2.input = model.transformer.h[2].ln_2.input + 3.0
    resid = model.transformer.h[2].output[0][0, -1, :4].save()
    model.transformer.h[3].attn.c_proj.input = model.transformer.h[3].attn.c_proj.input * -1
    logits = model.lm_head.output[0, -1].save()
print(logits.argmax().item())
