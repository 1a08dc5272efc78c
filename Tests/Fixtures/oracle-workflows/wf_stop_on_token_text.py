with model.generate("The Eiffel Tower is in the city of", max_new_tokens=6) as tracer:
    toks = [].save()
    with tracer.iter[:] as step:
        tok = model.lm_head.output[0, -1].argmax(dim=-1)
        toks.append(tok.item())
        if tok.item() in [5, 17, 1000]:
            tracer.stop()
print(toks)
