import nnsight
toks = []
with model.generate("Hello world", max_new_tokens=3) as tracer:
    with tracer.all():
        toks.append(model.lm_head.output[0, -1].argmax(dim=-1))
print(len(toks), [t.item() for t in toks])
