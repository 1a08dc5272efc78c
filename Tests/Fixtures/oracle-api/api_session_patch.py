with model.session() as session:
    with model.trace("The Eiffel Tower is in the city of") as clean:
        h = model.transformer.h[1].output[0].save()
        clean_logits = model.lm_head.output[0, -1].save()
    print(h.shape)
    with model.trace("The Colosseum is in the city of") as corrupted:
        model.transformer.h[1].output[0][:, -1] = h[:, -1]
        logits = model.lm_head.output[0, -1].save()
print(logits.argmax().item(), clean_logits.argmax().item(), round((logits - clean_logits).abs().max().item(), 3))
