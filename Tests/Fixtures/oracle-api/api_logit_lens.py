with model.trace("The Eiffel Tower is in the city of") as tracer:
    tops = list().save()
    for i, layer in enumerate(model.transformer.h):
        logits = model.lm_head(model.transformer.ln_f(layer.output[0]))
        probs = logits[0, -1].softmax(dim=-1)
        tops.append(probs.argmax(dim=-1))
        print(i, round(probs.max().item(), 4))
    final = model.lm_head.output[0, -1].argmax(dim=-1).save()
print([t.item() for t in tops], final.item())
